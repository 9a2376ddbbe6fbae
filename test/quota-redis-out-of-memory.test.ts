// docs/reliability.md, case 29: Redis out of memory fails closed (503, nothing admitted) and recovers when
// memory is back; a gateway warns at start when Redis's eviction policy could drop quota keys.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { post, startFake, startQuotaGateway, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 };
const EVICTION_WARNING =
  'redis maxmemory-policy is not noeviction: under memory pressure Redis may evict quota counters and reservations, and quotas stop holding; set maxmemory-policy noeviction';

let fake: FakeUpstream;
let redis: RedisServer;
let gateway: TestGateway;

beforeAll(async () => {
  fake = await startFake();
  redis = await startRedis();
  gateway = await startQuotaGateway(fake, redis.url);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
  await redis.stop();
});

describe('Redis out of memory', () => {
  it('refuses every request with 503 while it lasts, and admits again afterwards', async () => {
    const key = await userWithKey(gateway, 'oom', { tokensPerDay: 100_000 });
    await redis.cli('config', 'set', 'maxmemory', '1');
    try {
      for (let i = 0; i < 3; i++) {
        const answer = await post(gateway.url, key, '/chat/completions', BODY);
        expect(answer.status).toBe(503);
        expect(answer.json.error.code).toBe('quota_backend_unavailable');
      }
      expect(fake.requests).toHaveLength(0);
    } finally {
      await redis.cli('config', 'set', 'maxmemory', '0');
    }
    expect((await post(gateway.url, key, '/chat/completions', BODY)).status).toBe(200);
    expect((await usageOf(gateway, 'oom')).day.requests).toBe(1);
  });

  it('is not warned about when the policy is noeviction', () => {
    expect(gateway.logs.filter((l) => l.msg === EVICTION_WARNING)).toEqual([]);
  });
});

describe('an eviction policy that could drop quota keys', () => {
  it('is warned about at start', async () => {
    const lru = await startRedis(['--maxmemory-policy', 'volatile-lru']);
    const warned = await startQuotaGateway(fake, lru.url);
    try {
      expect(warned.logs.filter((l) => l.msg === EVICTION_WARNING)).toEqual([
        expect.objectContaining({ level: 40, maxmemoryPolicy: 'volatile-lru', node: `127.0.0.1:${lru.port}` }),
      ]);
    } finally {
      await warned.close();
      await lru.stop();
    }
  });
});
