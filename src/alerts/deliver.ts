// Sends queued deliveries. Every process runs one of these loops: each turn claims the due
// deliveries in the store (src/alerts/types.ts claim: one process per delivery), posts them all at
// once, and records each attempt. A failure (no answer, a status other than 2xx) is tried again
// after firstRetryMs, doubling up to an hour, until 24 h after the event; then it is given up, and
// that last attempt says so. Nothing here runs on a request's path: a hung receiver holds only
// its own attempt, until `timeoutMs`.
//
// Deliveries go out directly, not through the outbound proxies of the settings: those are for the
// upstream API; a webhook receiver is the operator's own service (docs/alerts.md).
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import { SIGNATURE_HEADER, signature } from './signing.js';
import type { AlertStore, Attempt, Delivery, SigningWebhook } from './types.js';

export const RETRY_FOR_MS = 24 * 3_600_000;
const MAX_WAIT_MS = 3_600_000;
// Attempts in flight at once in one process; the rest wait in the queue for a later turn.
const IN_FLIGHT_MAX = 50;

export interface DelivererOptions {
  store: AlertStore;
  /** The webhook of an id, settings or store, its secret opened; undefined once removed. Throws
   * when its secret does not open here: the delivery is left claimed, and goes out when its claim
   * lapses, from a process that opens it. */
  webhook(id: string): Promise<SigningWebhook | undefined>;
  firstRetryMs: number;
  pollMs: number;
  timeoutMs: number;
  log: Logger;
  now?: () => number;
}

/** When the attempt after `attempts` failed ones is due, or undefined past the 24 h. */
export function nextAttemptAt(delivery: Delivery, attempts: number, now: number, firstRetryMs: number): number | undefined {
  const wait = Math.min(MAX_WAIT_MS, firstRetryMs * 2 ** Math.min(attempts - 1, 30));
  const at = now + wait;
  return at - delivery.firstAt > RETRY_FOR_MS ? undefined : at;
}

export class Deliverer {
  private readonly agent: Agent;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private turn: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private again = false;
  private closed = false;

  constructor(private readonly options: DelivererOptions) {
    this.now = options.now ?? Date.now;
    this.agent = new Agent({ headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs, connect: { timeout: options.timeoutMs } });
  }

  start(): void {
    this.timer = setInterval(() => this.kick(), this.options.pollMs);
    this.timer.unref();
  }

  /** Looks for due deliveries now (after an event was queued), besides the regular turns. */
  kick(): void {
    if (this.closed) return;
    if (this.turn) {
      this.again = true;
      return;
    }
    this.turn = this.runTurn()
      .catch((err: unknown) => this.options.log.warn({ reason: (err as Error).message }, 'alerts: could not read the delivery queue'))
      .finally(() => {
        this.turn = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    // A receiver that hangs must not hold the shutdown: its attempt is cut, and retried later.
    await this.agent.destroy().catch(() => {});
    await this.turn;
    await Promise.all(this.inFlight);
  }

  // A turn claims and starts attempts, and does not wait for them: a receiver that hangs holds
  // its own attempt only, never the next turn.
  private async runTurn(): Promise<void> {
    const room = IN_FLIGHT_MAX - this.inFlight.size;
    if (room <= 0) return;
    // The claim lasts as long as an attempt can, with room to record it.
    const lease = this.options.timeoutMs * 2 + 5000;
    const due = await this.options.store.claim(this.now(), lease, room);
    for (const delivery of due) {
      const attempt: Promise<void> = this.attempt(delivery)
        .catch((err: unknown) => this.options.log.warn({ delivery: delivery.id, reason: (err as Error).message }, 'alerts: could not make or record a delivery attempt'))
        .finally(() => this.inFlight.delete(attempt));
      this.inFlight.add(attempt);
    }
  }

  private async attempt(delivery: Delivery): Promise<void> {
    const hook = await this.options.webhook(delivery.webhookId);
    const started = this.now();
    const number = delivery.attempts + 1;
    if (!hook) {
      // Removed since the event: nobody to send it to.
      await this.options.store.attempted(delivery, this.record(delivery, number, started, null, 'the webhook was removed', undefined), undefined, started);
      return;
    }
    let status: number | null = null;
    let error: string | null = null;
    // One deadline for the whole attempt, the answer's body included: an attempt that outlived its
    // claim would be claimed and sent again (a receiver that answers 200 and trickles its body).
    const deadline = AbortSignal.timeout(this.options.timeoutMs);
    try {
      const t = Math.floor(this.now() / 1000);
      const answer = await request(hook.url, {
        method: 'POST',
        dispatcher: this.agent,
        signal: deadline,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'keyrelay-webhooks',
          'x-keyrelay-event': delivery.type,
          'x-keyrelay-delivery': delivery.id,
          [SIGNATURE_HEADER]: signature(hook.secret, delivery.body, t),
        },
        body: delivery.body,
      });
      status = answer.statusCode;
      // The status is the receiver's word; the body only has to be let go of, within the deadline.
      await answer.body.dump({ limit: 64 * 1024, signal: deadline }).catch(() => answer.body.destroy());
      if (status < 200 || status > 299) error = `the receiver answered ${status}`;
    } catch (err) {
      error = deadline.aborted ? 'timeout' : ((err as { code?: string }).code ?? 'request failed');
    }
    const ended = this.now();
    const next = error === null ? undefined : nextAttemptAt(delivery, number, ended, this.options.firstRetryMs);
    const attempt = this.record(delivery, number, started, status, error, next);
    if (error !== null) {
      this.options.log.warn({ webhook: hook.id, event: delivery.eventId, type: delivery.type, attempt: number, status, reason: error, next: attempt.nextAttemptAt }, next === undefined ? 'alerts: webhook delivery given up' : 'alerts: webhook delivery failed, will retry');
    }
    await this.options.store.attempted({ ...delivery, attempts: number }, attempt, next, ended);
  }

  private record(delivery: Delivery, number: number, started: number, status: number | null, error: string | null, next: number | undefined): Attempt {
    return {
      deliveryId: delivery.id,
      eventId: delivery.eventId,
      type: delivery.type,
      attempt: number,
      at: new Date(started).toISOString(),
      status,
      ok: error === null,
      error,
      durationMs: Math.max(0, this.now() - started),
      nextAttemptAt: next === undefined ? null : new Date(next).toISOString(),
    };
  }
}
