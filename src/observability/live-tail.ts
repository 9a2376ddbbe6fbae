// The live tail of the request log (GET /admin/requests/stream): every record kept from now on,
// by any process on the store (request-log-redis.ts publishes them), as Server-Sent Events to
// each client whose filter it matches.
//
// Each client is a Readable that the reply pipes to its socket; what the socket has not taken
// waits in that Readable, and a client that lets more than `maxBufferedBytes` wait there is
// dropped (its connection closed) rather than held in memory: one slow reader neither grows the
// process nor holds back the others, who are written to independently. A comment line every
// `keepAliveMs` keeps proxies from closing a quiet stream. At shutdown every stream is ended.
import { Readable } from 'node:stream';
import type { StoredRecord } from './record.js';
import { type RequestFilter, type RequestLogStore, matches } from './request-log.js';

export interface LiveTailOptions {
  keepAliveMs: number;
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
}

export const KEEP_ALIVE = ': keep-alive\n\n';

export const event = (record: StoredRecord): string => `event: request\ndata: ${JSON.stringify(record)}\n\n`;

export class LiveTail {
  private readonly clients = new Set<Client>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: RequestLogStore,
    private readonly options: LiveTailOptions,
  ) {}

  get size(): number {
    return this.clients.size;
  }

  /** A stream for one client; it ends when `closeAll` is called, and cleans up when it closes. */
  open(filter: RequestFilter): Readable {
    // `read` does nothing: data is pushed as records come, and the buffer is bounded by hand.
    const stream = new Readable({ read() {} });
    const client: Client = { stream, filter, unsubscribe: () => {} };
    this.clients.add(client);
    client.unsubscribe = this.log.subscribe((record) => {
      if (matches(record, filter)) this.write(client, event(record));
    });
    stream.once('close', () => this.remove(client));
    // The first bytes: the client sees the answer start before any request ends.
    stream.push(': connected\n\n');
    this.keepAlive();
    this.options.onClients?.(this.clients.size);
    return stream;
  }

  /** Ends every open stream (the server is shutting down). */
  closeAll(): void {
    for (const client of [...this.clients]) {
      this.remove(client);
      client.stream.push(null);
    }
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
    if (this.clients.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
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
