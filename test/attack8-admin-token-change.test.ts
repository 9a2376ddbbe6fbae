// Attack: an admin session outliving the admin token it was signed in with. The admin token is
// changed (a restart with a new KEYRELAY_ADMIN_TOKEN) because the old one leaked; a thief who
// signed in to the console with it must not keep the admin API through the session, which the
// store (Redis) keeps across the restart. Two gateways on one Redis stand for before and after.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { call, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const NEW_TOKEN = 'rotated-admin-token-9876543210';
registerSecret(ADMIN_TOKEN);
registerSecret(NEW_TOKEN);

describe('an admin session after the admin token changed', () => {
  let redis: RedisServer;
  let before: TestGateway;
  let after: TestGateway;

  beforeAll(async () => {
    redis = await startRedis();
    before = await startGateway({ env: { REDIS_URL: redis.url } });
    after = await startGateway({ env: { REDIS_URL: redis.url, KEYRELAY_ADMIN_TOKEN: NEW_TOKEN } });
  });

  afterAll(async () => {
    await before?.close();
    await after?.close();
    await redis?.stop();
  });

  it('is no session on the gateway with the new token: not on /admin, not on /console/api/session', async () => {
    const thief = await signIn(before.url, ADMIN_TOKEN);
    // Still good where the old token is the admin token.
    expect((await call(before.url, 'GET', '/admin/users', { cookie: thief.cookie })).status).toBe(200);

    const users = await call(after.url, 'GET', '/admin/users', { cookie: thief.cookie });
    expect(users.status).toBe(401);
    expect(users.json.error.code).toBe('invalid_api_key');
    const made = await call(after.url, 'POST', '/admin/users', { cookie: thief.cookie, csrf: thief.csrf, body: { id: 'mallory' } });
    expect(made.status).toBe(401);
    expect((await call(after.url, 'GET', '/admin/users/mallory', { headers: { authorization: `Bearer ${NEW_TOKEN}` } })).status).toBe(404);
    const session = await call(after.url, 'GET', '/console/api/session', { cookie: thief.cookie });
    expect(session.status).toBe(401);
    expect(session.json.error.code).toBe('no_session');
  });

  it('takes a session signed in with the new token on both gateways only where that token is the admin token', async () => {
    const admin = await signIn(after.url, NEW_TOKEN);
    expect((await call(after.url, 'GET', '/admin/users', { cookie: admin.cookie })).status).toBe(200);
    expect((await call(before.url, 'GET', '/admin/users', { cookie: admin.cookie })).status).toBe(401);
  });
});

describe('an admin session on a gateway with no admin token', () => {
  let redis: RedisServer;
  let withToken: TestGateway;
  let without: TestGateway;

  beforeAll(async () => {
    redis = await startRedis();
    withToken = await startGateway({ env: { REDIS_URL: redis.url } });
    // The console on, its admin token removed: the admin sessions of before are nobody's.
    without = await startGateway({ env: { REDIS_URL: redis.url, KEYRELAY_ADMIN_TOKEN: undefined, KEYRELAY_CONSOLE: 'true' } });
  });

  afterAll(async () => {
    await withToken?.close();
    await without?.close();
    await redis?.stop();
  });

  it('is no session', async () => {
    const admin = await signIn(withToken.url, ADMIN_TOKEN);
    const session = await call(without.url, 'GET', '/console/api/session', { cookie: admin.cookie });
    expect(session.status).toBe(401);
    expect(session.json.error.code).toBe('no_session');
  });
});
