// The live tail of the request log (GET /admin/requests/stream): every record kept from now on,
// by any process on the store (request-log-redis.ts publishes them), as Server-Sent Events to
// each client whose filter it matches.
//
// Each client is a Readable that the reply pipes to its socket; what the socket has not taken
// waits in that Readable, and a client that lets more than `maxBufferedBytes` wait there is
// dropped (its connection closed) rather than held in memory: one slow reader neither grows the
// process nor holds back the others, who are written to independently. A comment line every
// `keepAliveMs` keeps proxies from closing a quiet stream. At shutdown every stream is ended.
//
// A stream outlives the request that opened it, and so the check of who may read it: a client
// opened with `holds` (a console session) has it asked again every `recheckMs`, and its stream is
// ended once it answers false or fails, so that signing out or a revoked key ends the live tail
// within that time rather than when the browser leaves.
import { Readable } from 'node:stream';
import type { StoredRecord } from './record.js';
import { type RequestFilter, type RequestLogStore, matches } from './request-log.js';

export interface LiveTailOptions {
  keepAliveMs: number;
  /** How often each client's `holds` is asked again; 2 s when not set. */
  recheckMs?: number;
  maxBufferedBytes: number;
  /** The number of clients changed. */
  onClients?(count: number): void;
  /** A client fell behind and was dropped. */
  onDropped?(): void;
}

interface Client {
  stream: Readable;
  filter: RequestFilter;
  unsubscribe(): void;
  holds?: () => Promise<boolean>;
  /** A check of `holds` is under way (a slow store): the next tick does not start another. */
  checking: boolean;
}

const RECHECK_MS = 2_000;

export const KEEP_ALIVE = ': keep-alive\n\n';

export const event = (record: StoredRecord): string => `event: request\ndata: ${JSON.stringify(record)}\n\n`;

export class LiveTail {
  private readonly clients = new Set<Client>();
  private timer: NodeJS.Timeout | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: RequestLogStore,
    private readonly options: LiveTailOptions,
  ) {}

  get size(): number {
    return this.clients.size;
  }

  /** A stream for one client; it ends when `closeAll` is called or `holds` no longer does, and
   * cleans up when it closes. */
  open(filter: RequestFilter, holds?: () => Promise<boolean>): Readable {
    // `read` does nothing: data is pushed as records come, and the buffer is bounded by hand.
    const stream = new Readable({ read() {} });
    const client: Client = { stream, filter, unsubscribe: () => {}, holds, checking: false };
    this.clients.add(client);
    client.unsubscribe = this.log.subscribe((record) => {
      if (matches(record, filter)) this.write(client, event(record));
    });
    stream.once('close', () => this.remove(client));
    // The first bytes: the client sees the answer start before any request ends.
    stream.push(': connected\n\n');
    this.keepAlive();
    if (holds) this.recheck();
    this.options.onClients?.(this.clients.size);
    return stream;
  }

  /** Ends every open stream (the server is shutting down). */
  closeAll(): void {
    for (const client of [...this.clients]) this.end(client);
  }

  /** Ends one stream: what was pushed before is still sent, then the answer ends. */
  private end(client: Client): void {
    this.remove(client);
    client.stream.push(null);
  }

  private write(client: Client, text: string): void {
    if (client.stream.destroyed) return;
    if (client.stream.readableLength + text.length > this.options.maxBufferedBytes) {
      this.remove(client);
      this.options.onDropped?.();
      client.stream.destroy();
      return;
    }
    client.stream.push(text);
  }

  private remove(client: Client): void {
    if (!this.clients.delete(client)) return;
    client.unsubscribe();
    this.options.onClients?.(this.clients.size);
    if (this.clients.size > 0) return;
    clearInterval(this.timer);
    clearInterval(this.recheckTimer);
    this.timer = undefined;
    this.recheckTimer = undefined;
  }

  /** One timer asking every client's `holds`, running while there is a client. */
  private recheck(): void {
    if (this.recheckTimer) return;
    this.recheckTimer = setInterval(() => {
      for (const client of this.clients) if (client.holds && !client.checking) void this.check(client, client.holds);
    }, this.options.recheckMs ?? RECHECK_MS);
    this.recheckTimer.unref();
  }

  private async check(client: Client, holds: () => Promise<boolean>): Promise<void> {
    client.checking = true;
    // A check that fails (the store unreachable) cannot say the session holds: the stream ends,
    // and the client's next open gets the store's own answer.
    const ok = await holds().catch(() => false);
    client.checking = false;
    if (!ok && this.clients.has(client)) this.end(client);
  }

  /** One timer for every client, running while there is one. */
  private keepAlive(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const client of [...this.clients]) this.write(client, KEEP_ALIVE);
    }, this.options.keepAliveMs);
    this.timer.unref();
  }
}
