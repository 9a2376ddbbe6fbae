// A gateway on a chosen store backend with the fake upstream behind it, and a WebSocket client that
// keeps every event it gets: for the tests of metered WebSocket sessions.
import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import type { Config } from '../../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { type Backend, STORE_BACKENDS } from './store-backends.js';
import { type TestGateway, startGateway } from './gateway.js';
import { registerPoolKey, registerSecret } from './log-capture.js';

export type Json = Record<string, any>;

/** Memory and a single Redis: the cluster runs the same scripts as the single Redis. */
export const WS_BACKENDS = STORE_BACKENDS.filter(([name]) => name !== 'cluster');

export const REALTIME_PRICE = { input: 4, cachedInput: 0.4, output: 16 };

export interface Metered {
  backend: Backend;
  fake: FakeUpstream;
  gateway: TestGateway;
  /** A new user with these fields: their id and key. */
  user(name: string, fields: Record<string, unknown>): Promise<{ id: string; key: string }>;
  /** The user's `usage` as GET /admin/users/{id} shows it. */
  usage(id: string): Promise<Json>;
  close(): Promise<void>;
}

/** `poolKeys`: how many pool keys the gateway has (round-robin between them). */
export async function startMetered(make: () => Promise<Backend>, config: Partial<Config> = {}, poolKeys = 1): Promise<Metered> {
  const keys = Array.from({ length: poolKeys }, (_, i) => `sk-pool-ws-metering-${i}-${Math.random().toString(36).slice(2, 10)}`);
  keys.forEach((key, i) => registerPoolKey(key, `pool key ${i} (ws-metering)`));
  const backend = await make();
  const fake = await startFakeUpstream({ keys });
  const gateway = await startGateway({
    env: { OPENAI_API_KEYS: keys.join(','), KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    store: backend.store,
    config: { prices: { 'gpt-realtime': REALTIME_PRICE }, ...config },
  });
  let seq = 0;
  return {
    backend,
    fake,
    gateway,
    async user(name, fields) {
      const id = `${name}-${++seq}-${Math.random().toString(36).slice(2, 6)}`;
      const key = await gateway.createUserKey(id, fields);
      registerSecret(key, `user key of ${id} (ws-metering)`);
      return { id, key };
    },
    async usage(id) {
      const user = await gateway.admin('GET', `/users/${id}`);
      if (user.status !== 200) throw new Error(`GET /admin/users/${id}: ${user.status}`);
      return user.json.usage;
    },
    async close() {
      // A test that failed midway leaves its sessions open; the server would wait for them.
      for (const client of Client.all) client.ws.terminate();
      Client.all.clear();
      await gateway.close();
      await fake.close();
      await backend.stop().catch(() => {});
    },
  };
}

export class Client {
  static readonly all = new Set<Client>();
  readonly events: Json[] = [];
  readonly closed: Promise<number>;
  private listeners: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.events.push(JSON.parse(String(data)) as Json);
      for (const wake of this.listeners.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    ws.on('error', () => {});
    Client.all.add(this);
  }

  static open(gateway: TestGateway, path: string, key: string): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`, [], { headers: { authorization: `Bearer ${key}` } });
    const client = new Client(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res: IncomingMessage) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  /** The status of a refused upgrade. */
  static refusal(gateway: TestGateway, path: string, key: string): Promise<number | undefined> {
    const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`, [], { headers: { authorization: `Bearer ${key}` } });
    ws.on('error', () => {});
    return new Promise((resolve) => {
      ws.once('open', () => {
        ws.terminate();
        resolve(101);
      });
      ws.once('unexpected-response', (_req, res: IncomingMessage) => {
        res.resume();
        resolve(res.statusCode);
        ws.terminate();
      });
    });
  }

  send(event: Json | string): void {
    this.ws.send(typeof event === 'string' ? event : JSON.stringify(event));
  }

  /** The first event from index `from` on that matches; fails after `ms` (a no-hang bound). */
  async next(match: (e: Json) => boolean, from = 0, ms = 10_000): Promise<Json> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.slice(from).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching event in ${ms} ms; got ${JSON.stringify(this.events.map((e) => e.type))}`);
      await new Promise<void>((resolve) => {
        this.listeners.push(resolve);
        setTimeout(resolve, 200).unref();
      });
    }
  }

  count(match: (e: Json) => boolean): number {
    return this.events.filter(match).length;
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close();
  }
}

/** Polls until `check` passes (it throws until then); fails after `ms`. */
export async function eventually<T>(check: () => Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
