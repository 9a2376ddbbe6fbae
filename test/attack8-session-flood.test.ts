// Attack as a user with a valid key: sign in over and over (a sign-in with a right token is not
// slowed) to fill the store with sessions: in memory until it is full, to push the admin's session
// out (the gateway runs with a store whose cap is small, so the flood is a few hundred sign-ins);
// on Redis, to grow it without end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { MAX_USER_SESSIONS, MemorySessionStore } from '../src/console-server/sessions.js';
import { createMemoryStore } from '../src/store/memory.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { SESSION_BACKENDS, call, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import type { RedisServer } from './helpers/redis-server.js';

registerSecret(ADMIN_TOKEN);

const CAP = 40;

describe('a flood of sign-ins with a valid key', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    const store = Object.assign(createMemoryStore(), { consoleSessions: new MemorySessionStore(CAP) });
    gw = await startGateway({ store });
  });

  afterAll(() => gw?.close());

  it("does not push the admin's session out; the flooder's oldest sessions go instead", async () => {
    const key = await gw.createUserKey('flooder');
    registerSecret(key);
    const victim = await gw.createUserKey('victim');
    registerSecret(victim);
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const first = await signIn(gw.url, key);
    let last = first;
    for (let i = 0; i < CAP * 3; i++) last = await signIn(gw.url, key);

    expect((await call(gw.url, 'GET', '/admin/users', { cookie: admin.cookie })).status).toBe(200);
    expect((await call(gw.url, 'POST', '/admin/users', { cookie: admin.cookie, csrf: admin.csrf, body: { id: 'after-flood' } })).status).toBe(201);
    expect((await call(gw.url, 'GET', '/console/api/me', { cookie: last.cookie })).status).toBe(200);
    expect((await call(gw.url, 'GET', '/console/api/me', { cookie: first.cookie })).status).toBe(401);
  });
});

describe.each(SESSION_BACKENDS)('one user signing in over and over on the %s store', (_name, startBackend) => {
  let redis: RedisServer | undefined;
  let gw: TestGateway;

  beforeAll(async () => {
    redis = await startBackend();
    gw = await startGateway({ env: { REDIS_URL: redis?.url } });
  });

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  it(`keeps at most ${MAX_USER_SESSIONS} of their sessions: the oldest end, other users' stay`, async () => {
    const key = await gw.createUserKey('flooder');
    const other = await gw.createUserKey('other');
    for (const k of [key, other]) registerSecret(k);
    const bystander = await signIn(gw.url, other);
    const sessions = [];
    for (let i = 0; i < MAX_USER_SESSIONS + 10; i++) sessions.push(await signIn(gw.url, key));
    for (const [i, session] of sessions.entries()) {
      const status = (await call(gw.url, 'GET', '/console/api/session', { cookie: session.cookie })).status;
      expect(status, `session ${i}`).toBe(i < 10 ? 401 : 200);
    }
    expect((await call(gw.url, 'GET', '/console/api/me', { cookie: bystander.cookie })).status).toBe(200);
    if (redis) {
      const stored = (await redis.cli('--scan', '--pattern', 'kr:console:session:*')).split('\n').filter(Boolean);
      expect(stored).toHaveLength(MAX_USER_SESSIONS + 1);
      const first = createHash('sha256').update(sessions[0]!.cookie.split('=')[1] as string).digest('hex');
      expect(stored).not.toContain(`kr:console:session:${first}`);
    }
  });
});
