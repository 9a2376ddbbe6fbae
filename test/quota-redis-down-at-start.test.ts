// docs/reliability.md, case 25: Redis down when the gateway starts: it starts anyway, says so, is not ready,
// answers quota-gated requests 503 quota_backend_unavailable, and recovers by itself once Redis is up.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { post, startFake, startQuotaGateway, until, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, freePort, startRedis } from './helpers/redis-server.js';

const UNAVAILABLE = {
  error: { message: 'The quota store is unreachable. Try again later.', type: 'server_error', param: null, code: 'quota_backend_unavailable' },
};
const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] };

let fake: FakeUpstream;
let gateway: TestGateway;
let redis: RedisServer | undefined;
let port: number;

beforeAll(async () => {
  fake = await startFake();
  port = await freePort();
  gateway = await startQuotaGateway(fake, `redis://127.0.0.1:${port}`);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
  await redis?.stop();
});

async function readiness(): Promise<{ status: number; json: unknown }> {
  const res = await request(`${gateway.url}/readyz`);
  return { status: res.statusCode, json: await res.body.json() };
}

describe('a gateway started while Redis is down', () => {
  it('says so, is not ready, answers 503 quota_backend_unavailable, and recovers when Redis comes up', async () => {
    expect(gateway.logs.some((l) => l.level === 40 && l.msg === 'redis is not reachable at start: quota-gated requests get 503 until it is')).toBe(true);
    expect(await readiness()).toEqual({ status: 503, json: { status: 'not_ready', store: false, poolKeys: true, closing: false, saturated: [] } });

    const answer = await post(gateway.url, `sk-kr-${'a'.repeat(40)}`, '/chat/completions', BODY);
    expect(answer.status).toBe(503);
    expect(answer.json).toEqual(UNAVAILABLE);
    expect(answer.headers['retry-after']).toBe('1');
    const admin = await gateway.admin('POST', '/users', { id: 'early' });
    expect(admin).toEqual({ status: 503, json: UNAVAILABLE });
    expect(fake.requests).toHaveLength(0);

    redis = await startRedis([], port);
    await until(async () => (await readiness()).status === 200, 'readiness to come back');
    const key = await userWithKey(gateway, 'later', { tokensPerDay: 100_000 });
    expect((await post(gateway.url, key, '/chat/completions', BODY)).status).toBe(200);
  });
});
