// Attacks on the cap of requests in flight (src/inbound/request-cap.ts): every way a request can
// end, or never properly start, must give its place back, or a client could starve every other
// user with a handful of sockets. The count is read from /metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { parsePrometheusText, sampleValue } from './helpers/prometheus-text.js';
import { until } from './helpers/quota-fixture.js';
import { openConnection, rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-attack9-cap-00000000001';
const CAP = 3;
const FAST_MS = 5000;

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;
const held = new Set<() => void>();

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  fake.handle(async (req) => {
    const meta = (req.json as { metadata?: { hold?: string } } | undefined)?.metadata;
    if (meta?.hold === undefined) return undefined;
    await new Promise<void>((resolve) => {
      held.add(resolve);
      void req.closed.then(() => held.delete(resolve));
    });
    return undefined;
  });
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { inbound: { maxRequestsInFlight: CAP } as never },
  });
  key = await gateway.createUserKey('mallory');
  registerSecret(key);
}, 30_000);

afterAll(async () => {
  for (const release of held) release();
  await gateway.close();
  await fake.close();
});

async function inFlight(): Promise<number> {
  const res = await fetch(`${gateway.url}/metrics`);
  return sampleValue(parsePrometheusText(await res.text()), 'keyrelay_inbound_requests_in_flight');
}

async function relayed(): Promise<number> {
  const res = await fetch(`${gateway.url}/metrics`);
  return sampleValue(parsePrometheusText(await res.text()), 'keyrelay_requests_in_flight');
}

const chat = (hold?: string) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], metadata: hold ? { hold } : {} });

function post(body: string, extra = ''): string {
  return `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ncontent-type: application/json\r\n${extra}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

describe('pipelined requests on one keep-alive socket', () => {
  it('give back every place, and their upstream requests end, when the client goes away while the first is held', async () => {
    const before = held.size;
    const connection = await openConnection(gateway.port);
    // The second is relayed at once too, but its answer waits behind the first's.
    connection.socket.write(post(chat('ok')) + post(chat('ok')) + post(chat()));
    await until(() => held.size === before + 2, 'the fake to hold the first two');
    await until(async () => (await inFlight()) === 3, 'the three to be counted');
    connection.socket.destroy();
    await until(async () => (await inFlight()) === 0, 'every place to be given back', FAST_MS);
    // The queued answer's upstream request is given up as the first one's is.
    await until(() => held.size === before, 'the upstream requests to end', FAST_MS);
    await until(async () => (await relayed()) === 0, 'no request relayed any more', FAST_MS);
  });
});
