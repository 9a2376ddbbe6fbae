// A client of the live tail's Server-Sent Events (GET /admin/requests/stream and
// /console/api/me/requests/stream): collects each `request` event's record as it arrives.
export const TAIL_BOUND_MS = 5_000;

export interface Tail {
  status: number;
  headers: Headers;
  events: Array<Record<string, any>>;
  text(): string;
  /** Resolves once `check` holds for the events seen, or fails after TAIL_BOUND_MS. */
  until(check: (events: Array<Record<string, any>>) => boolean, what: string): Promise<void>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Opens `url` (the stream route with its query) sending `headers` (a bearer token or a cookie). */
export async function openTail(url: string, headers: Record<string, string>): Promise<Tail> {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  const events: Array<Record<string, any>> = [];
  let raw = '';
  let pending = '';
  const waiters = new Set<() => void>();
  const reader = res.body?.getReader();
  const decoder = new TextDecoder();
  const ended = (async () => {
    if (!reader) return;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        const chunk = decoder.decode(value, { stream: true });
        raw += chunk;
        pending += chunk;
        let end = pending.indexOf('\n\n');
        while (end !== -1) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          const data = block.split('\n').find((line) => line.startsWith('data: '));
          if (block.startsWith('event: request\n') && data) events.push(JSON.parse(data.slice(6)));
          end = pending.indexOf('\n\n');
        }
        for (const wake of waiters) wake();
      }
    } catch {
      // Aborted by the test, or the connection closed by the server.
    } finally {
      for (const wake of waiters) wake();
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    events,
    text: () => raw,
    async until(check, what) {
      const deadline = Date.now() + TAIL_BOUND_MS;
      while (!check(events)) {
        if (Date.now() > deadline) throw new Error(`live tail: no ${what} within ${TAIL_BOUND_MS} ms; saw ${events.length} events`);
        await new Promise<void>((resolve) => {
          waiters.add(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
    ended,
    close: () => controller.abort(),
  };
}
