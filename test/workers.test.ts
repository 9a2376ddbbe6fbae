// Several workers sharing one port (KEYRELAY_WORKERS), on one Redis: both serve requests, a
// key issued through one works through the other, and SIGTERM stops them all with exit code 0.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { type RedisServer, freePort, startRedis } from './helpers/redis-server.js';

const POOL_KEY = 'sk-pool-workers-test-0000001';

let redis: RedisServer;
let fake: FakeUpstream;
let served: ChildGateway;
let url: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  redis = await startRedis();
  fake = await startFakeUpstream();
  // A fixed port: with workers, each reports the port it was given.
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  served = await startChildGateway(
    { PORT: String(port), KEYRELAY_WORKERS: '2', REDIS_URL: redis.url, OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    { entry: 'serve', listening: 2 },
  );
}, 60_000);

afterAll(async () => {
  if (served.child.exitCode === null) served.child.kill('SIGKILL');
  await fake.close();
  await redis.stop();
});

describe('two workers', () => {
  it('run in two processes besides the primary', () => {
    const pids = new Set(served.logs.filter((l) => l.msg === 'keyrelay listening').map((l) => l.pid));
    expect(pids.size).toBe(2);
    expect(pids.has(served.pid)).toBe(false);
  });

  it('share users and keys through Redis, and both serve requests', async () => {
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const created = await request(`${url}/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ id: 'alice' }) });
    expect(created.statusCode).toBe(201);
    await created.body.text();
    const keyAnswer = await request(`${url}/admin/users/alice/keys`, { method: 'POST', headers: admin, body: '{}' });
    const { key } = (await keyAnswer.body.json()) as { key: string };
    registerSecret(key);

    // New connections each time, so the primary hands them to both workers in turn.
    for (let i = 0; i < 12; i++) {
      const res = await request(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}`, connection: 'close' }, reset: true });
      expect(res.statusCode).toBe(200);
      await res.body.text();
    }
    const servedBy = new Set(served.logs.filter((l) => l.msg === 'request' && l.route === '/v1/models').map((l) => l.pid));
    expect(servedBy.size).toBe(2);
  });

  it('SIGTERM stops the primary and every worker with exit code 0', async () => {
    served.child.kill('SIGTERM');
    expect((await served.exited).code).toBe(0);
    const health = await request(`${url}/healthz`).catch((err: Error) => err);
    expect(health).toBeInstanceOf(Error);
  });
});
