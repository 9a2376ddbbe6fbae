// Key health is shared by every gateway process through the store: a key one process disables is
// avoided by another on the same Redis (each reads the shared records every second), and so is an
// admin's disable or enable made on either. Two gateways in this process, each with Redis
// connections of its own.
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { invalidKeyBody, type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { CHAT, poolSecret } from './helpers/pool-fixture.js';
import { until } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let redis: RedisServer;
let fake: FakeUpstream;
let first: TestGateway;
let second: TestGateway;
let userKey: string;

async function gatewayOnRedis(): Promise<TestGateway> {
  const upstreams = [{ id: 'main', baseUrl: fake.baseUrl, keys: ['a', 'b'].map((id) => ({ id, key: poolSecret(id) })) }];
  // Round robin, so that the same request reaches every key (affinity would keep it on one).
  return startGateway({ env: { REDIS_URL: redis.url }, config: { upstreams, pool: { cacheAffinity: false } } as Partial<Config> });
}

async function keyState(gateway: TestGateway, id: string): Promise<{ state: string; reason: string | null }> {
  const { json } = await gateway.admin('GET', '/upstreams');
  const key = json.data[0].keys.find((k: { id: string }) => k.id === id);
  return { state: key.state, reason: key.reason };
}

async function chat(gateway: TestGateway): Promise<number> {
  const res = await fetch(`${gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(CHAT),
  });
  await res.arrayBuffer();
  return res.status;
}

const keysUsed = (): string[] => fake.requests.map((r) => (r.headers.authorization === `Bearer ${poolSecret('a')}` ? 'a' : 'b'));

beforeAll(async () => {
  for (const id of ['a', 'b']) registerSecret(poolSecret(id));
  redis = await startRedis();
  fake = await startFakeUpstream();
  first = await gatewayOnRedis();
  second = await gatewayOnRedis();
  userKey = await first.createUserKey('shared');
  registerSecret(userKey);
});
afterAll(async () => {
  await Promise.all([first.close(), second.close()]);
  await fake.close();
  await redis.stop();
});
beforeEach(() => fake.reset());

it('a key disabled by one process is avoided by the other', async () => {
  fake.handle((req) => (req.headers.authorization === `Bearer ${poolSecret('a')}` ? { status: 401, body: invalidKeyBody(req.headers.authorization) } : undefined));
  expect(await chat(first)).toBe(200);
  expect(keysUsed()).toEqual(['a', 'b']);
  expect(await keyState(first, 'a')).toEqual({ state: 'disabled', reason: 'invalid_api_key' });

  await until(async () => (await keyState(second, 'a')).state === 'disabled', 'the second process to learn of it', 5000);
  expect(await keyState(second, 'a')).toEqual({ state: 'disabled', reason: 'invalid_api_key' });
  fake.reset();
  for (let i = 0; i < 4; i++) expect(await chat(second)).toBe(200);
  expect(keysUsed()).toEqual(['b', 'b', 'b', 'b']);
});

it("an admin's disable and enable on one process reach the other", async () => {
  expect((await second.admin('POST', '/upstreams/main/keys/b/disable')).status).toBe(200);
  await until(async () => (await keyState(first, 'b')).state === 'disabled', 'the first process to learn of the disable', 5000);
  expect(await keyState(first, 'b')).toEqual({ state: 'disabled', reason: 'manual' });

  expect((await first.admin('POST', '/upstreams/main/keys/a/enable')).status).toBe(200);
  expect((await first.admin('POST', '/upstreams/main/keys/b/enable')).status).toBe(200);
  await until(async () => (await keyState(second, 'a')).state === 'active' && (await keyState(second, 'b')).state === 'active', 'the second process to learn of the enables', 5000);
  for (let i = 0; i < 4; i++) expect(await chat(second)).toBe(200);
  expect(new Set(keysUsed())).toEqual(new Set(['a', 'b']));
});
