// A webhook receiver that answers 200 at once and then keeps its answer's body open, sending a
// byte now and then (a proxy that streams, a misbehaving framework): the event was delivered.
// The attempt must end within its timeout and be recorded, so that the event is not sent again.
// Today the attempt waits for the body's end; its claim lapses (twice timeoutMs plus 5 s) and the
// same event is claimed and sent again, and again, for as long as the receiver trickles.
import { type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { SECRET_A, runtimeSecret } from './helpers/runtime-fixture.js';

const KEY = runtimeSecret('slow-body');
const HOOK_SECRET = 'whsec-slow-body-0123456789abcdef';
registerSecret(HOOK_SECRET);

let fake: FakeUpstream;
let gateway: TestGateway;
let receiver: Server;
const received: string[] = [];
const open = new Set<ServerResponse>();
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('o');
      open.add(res);
      // A byte every 100 ms: never idle for the attempt's timeout, never ended.
      const timer = setInterval(() => res.write('k'), 100);
      timers.add(timer);
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  fake = await startFakeUpstream();
  gateway = await startGateway({
    env: { KEYRELAY_SECRET: SECRET_A, OPENAI_API_KEYS: 'sk-slow-body-settings-000000000000001', KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { alerts: { webhooks: [{ id: 'slow', url, events: ['pool_key.added'], secret: HOOK_SECRET }], firstRetryMs: 200, pollMs: 100, timeoutMs: 300 } },
  });
});
afterAll(async () => {
  for (const timer of timers) clearInterval(timer);
  await gateway.close();
  for (const res of open) res.destroy();
  receiver.closeAllConnections();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  await fake.close();
});

describe('a receiver that answers 200 and never ends its body', () => {
  it('gets the event once, and the attempt is recorded', async () => {
    expect((await gateway.admin('POST', '/upstreams/default/keys', { id: 'slow', key: KEY })).status).toBe(201);
    // Past the claim of the first attempt (2 × 300 ms + 5 s), with room on a busy machine.
    await new Promise((r) => setTimeout(r, 9000));
    const events = received.map((b) => (JSON.parse(b) as { id: string }).id);
    expect(events).toHaveLength(1);
    const deliveries = await gateway.admin('GET', '/webhooks/slow/deliveries');
    expect(deliveries.json.data).toEqual([expect.objectContaining({ attempt: 1, status: 200, ok: true })]);
  }, 30_000);
});
