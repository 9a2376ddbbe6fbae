// /readyz tells a load balancer that a process is saturated: at `inbound.maxRequestsInFlight`, at
// `maxConnections` or past `maxEventLoopDelayMs` it answers 503 naming the limit, and 200 again
// only once under 90 % of it; /healthz (liveness) stays 200 all along.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { holdMark, holdUntilReleased } from './helpers/held-requests.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { parsePrometheusText, sampleValue } from './helpers/prometheus-text.js';
import { type RawConnection, openConnection, rawRequest } from './helpers/raw-socket.js';
import { until } from './helpers/quota-fixture.js';

const POOL_KEY = 'sk-pool-readiness-00000000001';
const MAX_REQUESTS = 10;
const MAX_CONNECTIONS = 12;
const MAX_LOOP_DELAY_MS = 100;

let fake: FakeUpstream;
const held: Array<() => void> = [];
const holding = new Set<() => void>();

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  fake.handle(async (req) => {
    if (holdMark(req) === undefined) return undefined;
    await holdUntilReleased(req, holding);
    return undefined;
  });
});
afterAll(async () => {
  for (const release of holding) release();
  await fake.close();
});

async function probe(gateway: TestGateway, path = '/readyz'): Promise<{ status: number; json: any }> {
  const answer = await rawRequest(gateway.port, `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`, 10_000);
  return { status: answer.status, json: JSON.parse(answer.body) };
}

function notReady(saturated: unknown[]) {
  return { status: 'not_ready', store: true, poolKeys: true, closing: false, saturated };
}
const READY = { status: 'ready', store: true, poolKeys: true, closing: false, saturated: [] };

describe('requests in flight', () => {
  let gateway: TestGateway;
  let key: string;
  beforeAll(async () => {
    gateway = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
      config: { inbound: { maxRequestsInFlight: MAX_REQUESTS } as never },
    });
    key = await gateway.createUserKey('alice');
    registerSecret(key);
  }, 30_000);
  afterAll(() => gateway.close());

  const inFlight = async () => sampleValue(parsePrometheusText(await (await fetch(`${gateway.url}/metrics`)).text()), 'keyrelay_inbound_requests_in_flight');

  function heldChat() {
    const answer = fetch(`${gateway.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], metadata: { hold: 'ok' } }),
    });
    answer.catch(() => undefined);
    return answer;
  }

  async function releaseOne(): Promise<void> {
    const [release] = holding;
    if (!release) throw new Error('nothing held');
    holding.delete(release);
    release();
  }

  it('is 503 naming `requests` at the limit, stays out until under 90 % of it, and /healthz stays 200', async () => {
    expect(await probe(gateway)).toEqual({ status: 200, json: READY });
    const answers = Array.from({ length: MAX_REQUESTS }, heldChat);
    await until(() => holding.size === MAX_REQUESTS, 'the fake to hold every request');
    await until(async () => (await inFlight()) === MAX_REQUESTS, 'every place to be taken');

    const full = await probe(gateway);
    expect(full).toEqual({ status: 503, json: notReady([{ limit: 'requests', current: MAX_REQUESTS, max: MAX_REQUESTS }]) });
    expect(await probe(gateway, '/healthz')).toEqual({ status: 200, json: { status: 'ok' } });

    // 9 of 10: no longer at the limit, but not under 90 % of it either.
    await releaseOne();
    await until(async () => (await inFlight()) === MAX_REQUESTS - 1, 'one place to be given back');
    expect(await probe(gateway)).toEqual({ status: 503, json: notReady([{ limit: 'requests', current: MAX_REQUESTS - 1, max: MAX_REQUESTS }]) });

    await releaseOne();
    await until(async () => (await inFlight()) === MAX_REQUESTS - 2, 'a second place to be given back');
    expect(await probe(gateway)).toEqual({ status: 200, json: READY });

    for (const release of [...holding]) {
      holding.delete(release);
      release();
    }
    for (const answer of await Promise.all(answers)) expect(answer.status).toBe(200);
    await until(async () => (await inFlight()) === 0, 'every place to be given back');
    expect(await probe(gateway)).toEqual({ status: 200, json: READY });
  });
});

describe('open connections', () => {
  let gateway: TestGateway;
  const idle: RawConnection[] = [];
  beforeAll(async () => {
    gateway = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
      config: { inbound: { maxConnections: MAX_CONNECTIONS } as never },
    });
  }, 30_000);
  afterAll(async () => {
    for (const connection of idle) connection.socket.destroy();
    await gateway.close();
  });

  async function closeOne(): Promise<void> {
    const connection = idle.pop();
    if (!connection) throw new Error('no connection open');
    connection.socket.destroy();
    await connection.closed;
  }

  it('is 503 naming `connections` when the probe takes the last place, and 200 again under 90 %', async () => {
    expect(await probe(gateway)).toEqual({ status: 200, json: READY });
    // The probe's own connection takes the last place.
    for (let i = 0; i < MAX_CONNECTIONS - 1; i++) idle.push(await openConnection(gateway.port));
    await until(async () => (await probe(gateway)).status === 503, 'readiness to see the connections');
    expect(await probe(gateway)).toEqual({ status: 503, json: notReady([{ limit: 'connections', current: MAX_CONNECTIONS, max: MAX_CONNECTIONS }]) });
    expect(await probe(gateway, '/healthz')).toEqual({ status: 200, json: { status: 'ok' } });

    // 11 of 12 with the probe: not under 90 % (10.8).
    await closeOne();
    await until(async () => (await probe(gateway)).json.saturated[0]?.current === MAX_CONNECTIONS - 1, 'the gateway to see one connection go');
    expect(await probe(gateway)).toEqual({ status: 503, json: notReady([{ limit: 'connections', current: MAX_CONNECTIONS - 1, max: MAX_CONNECTIONS }]) });

    await closeOne();
    await until(async () => (await probe(gateway)).status === 200, 'the gateway to see a second connection go');
    expect(await probe(gateway)).toEqual({ status: 200, json: READY });
  });
});

describe('event loop delay', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
      config: { inbound: { maxEventLoopDelayMs: MAX_LOOP_DELAY_MS } as never },
    });
  }, 30_000);
  afterAll(() => gateway.close());

  it('is 503 naming `event_loop` after a stall past the limit, and 200 once the loop catches up', async () => {
    await until(async () => (await probe(gateway)).status === 200, 'a calm loop');
    // The gateway runs in this process: the probe is written, then the loop is held past the
    // limit; once let go, the sampler's timer runs before the probe's bytes are read.
    const connection = await openConnection(gateway.port);
    connection.socket.write('GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    const stallUntil = performance.now() + 3 * MAX_LOOP_DELAY_MS;
    while (performance.now() < stallUntil) {
      // Holding the event loop, as a CPU-bound request would.
    }
    const stalled = await connection.closed;
    expect(stalled.status).toBe(503);
    const body = JSON.parse(stalled.body);
    expect(body).toMatchObject({ status: 'not_ready', store: true, poolKeys: true, closing: false });
    expect(body.saturated).toHaveLength(1);
    expect(body.saturated[0]).toMatchObject({ limit: 'event_loop', max: MAX_LOOP_DELAY_MS });
    expect(body.saturated[0].current).toBeGreaterThan(MAX_LOOP_DELAY_MS);
    await until(async () => (await probe(gateway)).status === 200, 'the loop to catch up');
    expect(await probe(gateway, '/healthz')).toEqual({ status: 200, json: { status: 'ok' } });
  });
});
