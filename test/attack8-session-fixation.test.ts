// Attack on the session's life: a cookie value chosen by the attacker before sign-in (fixation),
// the attacker's own session planted in the victim's browser, and replays: after sign-out with
// the old CSRF token, after the user revoked the key they signed in with, after their user was
// deleted and made again under the same id. In memory and on a real Redis.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { SESSION_BACKENDS, call, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import type { RedisServer } from './helpers/redis-server.js';

registerSecret(ADMIN_TOKEN);

describe.each(SESSION_BACKENDS)('session fixation and replay on the %s store', (_name, startBackend) => {
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

  const valueOf = (cookie: string) => cookie.split('=')[1] as string;

  it('issues a fresh cookie over one the attacker chose, and the chosen one is no session', async () => {
    const chosen = 'attackerChoseThisValue_0123456789abcdefghij';
    expect(chosen).toHaveLength(43);
    const res = await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN }, cookie: `keyrelay_session=${chosen}` });
    expect(res.status).toBe(200);
    const issued = /^keyrelay_session=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1] ?? '';
    registerSecret(issued);
    registerSecret(res.json.csrfToken);
    expect(issued).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(issued).not.toBe(chosen);
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: `keyrelay_session=${chosen}` })).status).toBe(401);
    expect((await call(gw.url, 'GET', '/admin/users', { cookie: `keyrelay_session=${chosen}` })).status).toBe(401);
    if (redis) {
      const digest = createHash('sha256').update(chosen).digest('hex');
      expect(await redis.cli('exists', `kr:console:session:${digest}`)).toBe('0');
    }
  });

  it("ends the attacker's own session planted in the victim's browser when the victim signs in", async () => {
    const key = await gw.createUserKey('planter');
    registerSecret(key);
    const planted = await signIn(gw.url, key);
    const victim = await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN }, cookie: planted.cookie });
    expect(victim.status).toBe(200);
    registerSecret(victim.json.csrfToken);
    const issued = /^keyrelay_session=([^;]+)/.exec(victim.headers.get('set-cookie') ?? '')?.[1] ?? '';
    registerSecret(issued);
    expect(issued).not.toBe(valueOf(planted.cookie));
    // The attacker cannot follow the victim through the planted cookie.
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: planted.cookie })).status).toBe(401);
  });

  it('takes neither the old cookie nor its CSRF token after sign-out', async () => {
    const first = await signIn(gw.url, ADMIN_TOKEN);
    expect((await call(gw.url, 'DELETE', '/console/api/session', { cookie: first.cookie, csrf: first.csrf })).status).toBe(204);
    const second = await signIn(gw.url, ADMIN_TOKEN);
    expect((await call(gw.url, 'POST', '/admin/users', { cookie: first.cookie, csrf: first.csrf, body: { id: 'replayed' } })).status).toBe(401);
    expect((await call(gw.url, 'POST', '/admin/users', { cookie: second.cookie, csrf: first.csrf, body: { id: 'replayed' } })).status).toBe(403);
    expect((await gw.admin('GET', '/users/replayed')).status).toBe(404);
  });

  it('ends the session when the user revokes, through /me, the key they signed in with', async () => {
    const key = await gw.createUserKey('selfrevoke');
    registerSecret(key);
    const session = await signIn(gw.url, key);
    const keyId = (await call(gw.url, 'GET', '/console/api/me/keys', { cookie: session.cookie })).json.data[0].id;
    expect((await call(gw.url, 'DELETE', `/console/api/me/keys/${keyId}`, { cookie: session.cookie, csrf: session.csrf })).status).toBe(200);
    expect((await call(gw.url, 'GET', '/console/api/me', { cookie: session.cookie })).status).toBe(401);
    const made = await call(gw.url, 'POST', '/console/api/me/keys', { cookie: session.cookie, csrf: session.csrf, body: {} });
    expect(made.status).toBe(401);
    expect((await gw.admin('GET', '/users/selfrevoke/keys')).json.data).toHaveLength(1);
  });

  it('does not revive a session when its user is deleted and the id asked for again', async () => {
    const key = await gw.createUserKey('phoenix');
    registerSecret(key);
    const session = await signIn(gw.url, key);
    expect((await gw.admin('DELETE', '/users/phoenix')).status).toBe(200);
    // Ids of deleted users are never given again, so no new user can take the session over.
    const again = await gw.admin('POST', '/users', { id: 'phoenix' });
    expect(again.status).toBe(409);
    expect((await call(gw.url, 'GET', '/console/api/me', { cookie: session.cookie })).status).toBe(401);
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: session.cookie })).status).toBe(401);
  });
});
