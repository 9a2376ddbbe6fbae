// The audit log keeps 90 days; its age limit is enforced on every append, by the time of the
// process that appends. One gateway process whose clock runs ahead (a VM restored from a
// snapshot, a container without time sync) then erases every entry the others wrote, with one
// ordinary admin change: an attacker who can set one host's clock, or a careless operator, wipes
// the record of who did what. The age limit must be measured by one clock the processes share
// (the store's), so that one process's clock cannot delete the others' entries.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const DAY_MS = 86_400_000;

let redis: RedisServer;
let fake: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { REDIS_URL: redis.url, OPENAI_API_KEYS: 'sk-audit-clock-skew-0000000000000001', KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
});
afterEach(() => vi.useRealTimers());
afterAll(async () => {
  await gateway.close();
  await fake.close();
  await redis.stop();
});

describe('a second process whose clock runs 100 days ahead', () => {
  it('does not erase the entries the store already holds', async () => {
    for (const id of ['alice', 'bob', 'carol']) expect((await gateway.admin('POST', '/users', { id })).status).toBe(201);
    expect((await gateway.admin('GET', '/audit?limit=10')).json.data).toHaveLength(3);
    // A second gateway on the same Redis, started while this test process reads a time 100 days
    // ahead: the audit hook keeps that clock (only Date is faked; sockets and timers run).
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 100 * DAY_MS });
    const skewed = await startGateway({ env: { REDIS_URL: redis.url, OPENAI_API_KEYS: 'sk-audit-clock-skew-0000000000000001', KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
    vi.useRealTimers();
    try {
      expect((await skewed.admin('POST', '/users', { id: 'mallory' })).status).toBe(201);
    } finally {
      await skewed.close();
    }
    const targets = (await gateway.admin('GET', '/audit?limit=10')).json.data.map((e: { target: string }) => e.target);
    expect(targets).toEqual(expect.arrayContaining(['user:alice', 'user:bob', 'user:carol']));
  });
});
