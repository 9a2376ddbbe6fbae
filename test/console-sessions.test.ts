// Console sign-in and sessions over HTTP, on the in-memory store and on a real Redis: the cookie
// and its flags, the session on /admin in place of the admin token, the CSRF rule (and nothing
// changed when it refuses), sign-out ending the session in the store, a user's session ending
// with their key or their user, and /v1 never taking the cookie.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { SESSION_BACKENDS, call, consoleAnswers, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

registerSecret(ADMIN_TOKEN);

describe.each(SESSION_BACKENDS)('console sessions on the %s store', (_name, startBackend) => {
  let redis: RedisServer | undefined;
  let gw: TestGateway;
  const userKeys: Record<string, string> = {};

  beforeAll(async () => {
    redis = await startBackend();
    gw = await startGateway({ env: { REDIS_URL: redis?.url }, config: { console: { sessionHours: 2 } } });
    for (const id of ['alice', 'bob', 'carol', 'dave']) {
      userKeys[id] = await gw.createUserKey(id, { name: `${id[0]?.toUpperCase()}${id.slice(1)}` });
      registerSecret(userKeys[id] as string);
    }
  });

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  it('signs an admin in: the session JSON, a random HttpOnly SameSite=Strict cookie, no Secure over plain HTTP', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    expect(admin.answer.json).toEqual({ role: 'admin', user: null, csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), expiresAt: expect.any(String) });
    const ttl = Date.parse(admin.answer.json.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(2 * 3_600_000 - 60_000);
    expect(ttl).toBeLessThanOrEqual(2 * 3_600_000);
    expect(admin.setCookie).toMatch(/^keyrelay_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=7200$/);
    expect(admin.answer.headers.get('cache-control')).toBe('no-store');
    // Each sign-in is a new session with new secrets.
    const again = await signIn(gw.url, ADMIN_TOKEN);
    expect(again.cookie).not.toBe(admin.cookie);
    expect(again.csrf).not.toBe(admin.csrf);
    const read = await call(gw.url, 'GET', '/console/api/session', { cookie: admin.cookie });
    expect(read.status).toBe(200);
    expect(read.json).toEqual(admin.answer.json);
  });

  it('does not set Secure for an x-forwarded-proto: https it cannot trust', async () => {
    const res = await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN }, headers: { 'x-forwarded-proto': 'https' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).not.toContain('Secure');
  });

  it('signs a user in with their key', async () => {
    const alice = await signIn(gw.url, userKeys.alice as string);
    expect(alice.answer.json).toEqual({ role: 'user', user: { id: 'alice', name: 'Alice' }, csrfToken: expect.any(String), expiresAt: expect.any(String) });
    const read = await call(gw.url, 'GET', '/console/api/session', { cookie: alice.cookie });
    expect(read.json.user).toEqual({ id: 'alice', name: 'Alice' });
  });

  it('refuses every wrong token with the same 401, and no cookie', async () => {
    const revokedKey = await gw.createUserKey('eve');
    registerSecret(revokedKey);
    const keys = (await gw.admin('GET', '/users/eve/keys')).json.data;
    await gw.admin('DELETE', `/keys/${keys[0].id}`);
    const bodies = new Set<string>();
    for (const token of ['wrong-admin-token-0123456789', `${ADMIN_TOKEN}x`, 'sk-kr-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', revokedKey]) {
      const res = await call(gw.url, 'POST', '/console/api/session', { body: { token } });
      expect(res.status).toBe(401);
      expect(res.headers.get('set-cookie')).toBeNull();
      bodies.add(res.text);
    }
    expect(bodies.size).toBe(1);
    expect(JSON.parse([...bodies][0] as string).error).toMatchObject({ code: 'invalid_api_key', type: 'invalid_request_error', param: null });
  });

  it('refuses a sign-in from another origin, and takes one from its own', async () => {
    const foreign = await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN }, origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect(foreign.json.error.code).toBe('csrf_failed');
    expect(foreign.headers.get('set-cookie')).toBeNull();
    const own = await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN }, origin: gw.url });
    expect(own.status).toBe(200);
  });

  it('signs in again over a live session without its CSRF token, replacing it', async () => {
    const alice = await signIn(gw.url, userKeys.alice as string);
    const res = await call(gw.url, 'POST', '/console/api/session', { cookie: alice.cookie, body: { token: ADMIN_TOKEN } });
    expect(res.status).toBe(200);
    expect(res.json.role).toBe('admin');
    registerSecret(/^keyrelay_session=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1] ?? '');
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: alice.cookie })).status).toBe(401);
  });

  it('answers a malformed sign-in with a 400 naming the field', async () => {
    const res = await call(gw.url, 'POST', '/console/api/session', { body: { tokn: 'x' } });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('invalid_request');
    expect(res.text).toMatch(/token|tokn/);
  });

  it('GET /console/api/session without a session, or with an unknown cookie: 401 no_session', async () => {
    for (const cookie of [undefined, 'keyrelay_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'keyrelay_session=../../x']) {
      const res = await call(gw.url, 'GET', '/console/api/session', { cookie });
      expect(res.status).toBe(401);
      expect(res.json.error.code).toBe('no_session');
    }
  });

  it('trusts no cookie given twice, nor one of another shape, and reads it among other cookies', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const value = admin.cookie.split('=')[1] as string;
    const refused = [
      `${admin.cookie}; ${admin.cookie}`,
      `keyrelay_session=${'A'.repeat(43)}; ${admin.cookie}`,
      `keyrelay_session=${value}x`,
      `keyrelay_session="${value}"`,
      `keyrelay_sessionx=${value}`,
    ];
    for (const cookie of refused) expect((await call(gw.url, 'GET', '/admin/users', { cookie })).status, cookie).toBe(401);
    const among = await call(gw.url, 'GET', '/admin/users', { cookie: `theme=dark; ${admin.cookie}; other=1` });
    expect(among.status).toBe(200);
  });

  it('takes an admin session on /admin GETs in place of the token', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const users = await call(gw.url, 'GET', '/admin/users', { cookie: admin.cookie });
    expect(users.status).toBe(200);
    expect(users.json.data.map((u: { id: string }) => u.id)).toContain('alice');
    const audit = await call(gw.url, 'GET', '/admin/audit?limit=1', { cookie: admin.cookie });
    expect(audit.status).toBe(200);
    const none = await call(gw.url, 'GET', '/admin/users');
    expect(none.status).toBe(401);
  });

  it('refuses a change on /admin by cookie without the CSRF token, with a wrong one, or from another origin, and changes nothing', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const wrong = `${admin.csrf.slice(0, -1)}${admin.csrf.endsWith('A') ? 'B' : 'A'}`;
    const attempts = [
      { csrf: undefined, origin: undefined },
      { csrf: wrong, origin: undefined },
      { csrf: '', origin: undefined },
      { csrf: admin.csrf, origin: 'https://evil.example' },
      { csrf: admin.csrf, origin: 'null' },
      { csrf: admin.csrf, origin: `${gw.url}.evil.example` },
    ];
    const auditBefore = (await gw.admin('GET', '/audit?limit=1000')).json.data.length;
    for (const { csrf, origin } of attempts) {
      const post = await call(gw.url, 'POST', '/admin/users', { cookie: admin.cookie, csrf, origin, body: { id: 'mallory' } });
      const patch = await call(gw.url, 'PATCH', '/admin/users/alice', { cookie: admin.cookie, csrf, origin, body: { name: 'Pwned' } });
      const del = await call(gw.url, 'DELETE', '/admin/users/bob', { cookie: admin.cookie, csrf, origin });
      for (const res of [post, patch, del]) {
        expect(res.status).toBe(403);
        expect(res.json.error.code).toBe('csrf_failed');
      }
    }
    expect((await gw.admin('GET', '/users/mallory')).status).toBe(404);
    expect((await gw.admin('GET', '/users/alice')).json.name).toBe('Alice');
    expect((await gw.admin('GET', '/users/bob')).status).toBe(200);
    expect((await gw.admin('GET', '/audit?limit=1000')).json.data.length).toBe(auditBefore);
  });

  it('makes a change on /admin by cookie with the CSRF token, from the same origin or none, audited as the admin', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const sameOrigin = await call(gw.url, 'POST', '/admin/users', { cookie: admin.cookie, csrf: admin.csrf, origin: gw.url, body: { id: 'frank' } });
    expect(sameOrigin.status).toBe(201);
    const noOrigin = await call(gw.url, 'PATCH', '/admin/users/frank', { cookie: admin.cookie, csrf: admin.csrf, body: { name: 'Frank' } });
    expect(noOrigin.status).toBe(200);
    expect((await gw.admin('GET', '/users/frank')).json.name).toBe('Frank');
    const entry = (await gw.admin('GET', '/audit?limit=1')).json.data[0];
    expect(entry).toMatchObject({ actor: 'admin', action: 'user.update', target: 'user:frank' });
    // A bearer call needs no CSRF token, cookie or not.
    const bearer = await call(gw.url, 'DELETE', '/admin/users/frank', { cookie: admin.cookie, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(bearer.status).toBe(200);
  });

  it('does not let a wrong bearer token ride on a good cookie', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const res = await call(gw.url, 'GET', '/admin/users', { cookie: admin.cookie, headers: { authorization: 'Bearer nope-nope-nope-nope' } });
    expect(res.status).toBe(401);
  });

  it('signs out: needs the CSRF token, deletes the session in the store, clears the cookie; the old cookie then fails', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const refused = await call(gw.url, 'DELETE', '/console/api/session', { cookie: admin.cookie });
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('csrf_failed');
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: admin.cookie })).status).toBe(200);
    if (redis) expect(await redis.cli('--scan', '--pattern', 'kr:console:session:*')).not.toBe('');
    const out = await call(gw.url, 'DELETE', '/console/api/session', { cookie: admin.cookie, csrf: admin.csrf });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toBe('keyrelay_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0');
    const replayed = await call(gw.url, 'GET', '/console/api/session', { cookie: admin.cookie });
    expect(replayed.status).toBe(401);
    expect((await call(gw.url, 'GET', '/admin/users', { cookie: admin.cookie })).status).toBe(401);
    expect((await call(gw.url, 'POST', '/admin/users', { cookie: admin.cookie, csrf: admin.csrf, body: { id: 'ghost' } })).status).toBe(401);
    expect((await gw.admin('GET', '/users/ghost')).status).toBe(404);
  });

  it('keeps each session in the store with a TTL to its expiry, under the digest of the cookie', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    if (!redis) {
      expect((await call(gw.url, 'GET', '/console/api/session', { cookie: admin.cookie })).status).toBe(200);
      return;
    }
    const value = admin.cookie.split('=')[1] as string;
    const { createHash } = await import('node:crypto');
    const key = `kr:console:session:${createHash('sha256').update(value).digest('hex')}`;
    const pttl = Number(await redis.cli('pttl', key));
    expect(pttl).toBeGreaterThan(2 * 3_600_000 - 60_000);
    expect(pttl).toBeLessThanOrEqual(2 * 3_600_000);
    const stored = await redis.cli('get', key);
    expect(stored).not.toContain(value);
    expect(JSON.parse(stored)).toMatchObject({ role: 'admin', csrfToken: admin.csrf });
  });

  it('answers a user session on /admin as a missing token', async () => {
    const alice = await signIn(gw.url, userKeys.alice as string);
    for (const [method, path] of [['GET', '/admin/users'], ['GET', '/admin/users/alice'], ['GET', '/admin/requests'], ['GET', '/admin/audit']] as const) {
      const res = await call(gw.url, method, path, { cookie: alice.cookie });
      expect(res.status).toBe(401);
      expect(res.json.error.code).toBe('invalid_api_key');
    }
    const post = await call(gw.url, 'POST', '/admin/users/alice/keys', { cookie: alice.cookie, csrf: alice.csrf, body: {} });
    expect(post.status).toBe(401);
    expect((await gw.admin('GET', '/users/alice/keys')).json.data).toHaveLength(1);
  });

  it('never takes the cookie on /v1, for an admin or a user session', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const alice = await signIn(gw.url, userKeys.alice as string);
    for (const session of [admin, alice]) {
      const models = await call(gw.url, 'GET', '/v1/models', { cookie: session.cookie });
      expect(models.status).toBe(401);
      const chat = await call(gw.url, 'POST', '/v1/chat/completions', { cookie: session.cookie, csrf: session.csrf, body: { model: 'gpt-4o-mini', messages: [] } });
      expect(chat.status).toBe(401);
      expect(chat.json.error.code).toBe('invalid_api_key');
    }
  });

  it('ends a user session as soon as the key it signed in with is revoked', async () => {
    const carol = await signIn(gw.url, userKeys.carol as string);
    expect((await call(gw.url, 'GET', '/console/api/me', { cookie: carol.cookie })).status).toBe(200);
    const keyId = (await gw.admin('GET', '/users/carol/keys')).json.data[0].id;
    expect((await gw.admin('DELETE', `/keys/${keyId}`)).status).toBe(200);
    expect((await call(gw.url, 'GET', '/console/api/me', { cookie: carol.cookie })).status).toBe(401);
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: carol.cookie })).json.error.code).toBe('no_session');
    if (redis) {
      const { createHash } = await import('node:crypto');
      const digest = createHash('sha256').update(carol.cookie.split('=')[1] as string).digest('hex');
      expect(await redis.cli('exists', `kr:console:session:${digest}`)).toBe('0');
    }
  });

  it('ends a user session when the user is deleted or expires', async () => {
    const dave = await signIn(gw.url, userKeys.dave as string);
    const bob = await signIn(gw.url, userKeys.bob as string);
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: dave.cookie })).status).toBe(200);
    expect((await gw.admin('DELETE', '/users/dave')).status).toBe(200);
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: dave.cookie })).status).toBe(401);
    expect((await gw.admin('PATCH', '/users/bob', { expiresAt: '2001-01-01T00:00:00Z' })).status).toBe(200);
    expect((await call(gw.url, 'GET', '/console/api/me/keys', { cookie: bob.cookie })).status).toBe(401);
    expect((await gw.admin('PATCH', '/users/bob', { expiresAt: null })).status).toBe(200);
    // The session was ended, not merely refused while the user was expired.
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: bob.cookie })).status).toBe(401);
  });

  it('puts no admin token, user key or cookie in any answer', () => {
    const secrets = [ADMIN_TOKEN, ...Object.values(userKeys)];
    for (const answer of consoleAnswers) {
      for (const secret of secrets) expect(answer.text).not.toContain(secret);
    }
  });
});

describe('sign-in failures from one address', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw?.close());

  it('are slowed past 10 a minute: 429 with retry-after, even for the right token', async () => {
    for (let i = 0; i < 10; i++) {
      const res = await call(gw.url, 'POST', '/console/api/session', { body: { token: `wrong-token-${i}-0123456789` } });
      expect(res.status).toBe(401);
    }
    const slowed = await call(gw.url, 'POST', '/console/api/session', { body: { token: 'wrong-token-x-0123456789' } });
    expect(slowed.status).toBe(429);
    expect(slowed.json.error.code).toBe('rate_limit_exceeded');
    const retryAfter = Number(slowed.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const right = await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN } });
    expect(right.status).toBe(429);
    expect(right.headers.get('set-cookie')).toBeNull();
    // Other routes are not slowed.
    expect((await gw.admin('GET', '/users')).status).toBe(200);
  });
});

describe('console turned off', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { KEYRELAY_CONSOLE: 'false' } });
  });
  afterAll(() => gw?.close());

  it('answers 404 everywhere under /console, and /admin takes no cookie', async () => {
    for (const path of ['/console', '/console/', '/console/users', '/console/api/session']) {
      expect((await call(gw.url, 'GET', path)).status).toBe(404);
    }
    const signIn = await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN } });
    expect(signIn.status).toBe(404);
    expect(signIn.headers.get('set-cookie')).toBeNull();
  });
});

describe('the store unreachable', () => {
  let redis: RedisServer;
  let gw: TestGateway;
  beforeAll(async () => {
    redis = await startRedis();
    gw = await startGateway({ env: { REDIS_URL: redis.url } });
  });
  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  it('answers 503 to sign-in and to a session cookie, never lets the cookie through, and works again once Redis is back', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    await redis.kill();
    const signInDown = await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN } });
    expect(signInDown.status).toBe(503);
    expect(signInDown.headers.get('set-cookie')).toBeNull();
    const read = await call(gw.url, 'GET', '/console/api/session', { cookie: admin.cookie });
    expect(read.status).toBe(503);
    expect(read.json.error.code).toBe('quota_backend_unavailable');
    const adminRead = await call(gw.url, 'GET', '/admin/audit', { cookie: admin.cookie });
    expect(adminRead.status).toBe(503);
    await redis.start();
    // Redis came back empty (no persistence): the session is gone, the admin signs in again.
    let again: Awaited<ReturnType<typeof call>> | undefined;
    for (let i = 0; i < 50 && again?.status !== 200; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      again = await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN } });
    }
    expect(again?.status).toBe(200);
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: admin.cookie })).status).toBe(401);
  });
});
