// Console sessions across two gateway processes on one Redis (sign in on one, use and end the
// session on the other), and the cookie's Secure flag and the CSRF origin over TLS.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { call, signIn } from './helpers/console-client.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

registerSecret(ADMIN_TOKEN);

const bearer = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('two gateway processes on one Redis', () => {
  let redis: RedisServer;
  let a: ChildGateway;
  let b: ChildGateway;

  beforeAll(async () => {
    redis = await startRedis();
    [a, b] = await Promise.all([startChildGateway({ REDIS_URL: redis.url }), startChildGateway({ REDIS_URL: redis.url })]);
  }, 240_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  it('share admin sessions: signed in on one, used and signed out on the other, refused on both after', async () => {
    const admin = await signIn(a.url, ADMIN_TOKEN);
    expect((await call(b.url, 'GET', '/admin/users', { cookie: admin.cookie })).status).toBe(200);
    const created = await call(b.url, 'POST', '/admin/users', { cookie: admin.cookie, csrf: admin.csrf, body: { id: 'shared' } });
    expect(created.status).toBe(201);
    expect((await call(a.url, 'GET', '/admin/users/shared', { headers: bearer })).status).toBe(200);
    expect((await call(b.url, 'DELETE', '/console/api/session', { cookie: admin.cookie, csrf: admin.csrf })).status).toBe(204);
    expect((await call(a.url, 'GET', '/console/api/session', { cookie: admin.cookie })).status).toBe(401);
    expect((await call(a.url, 'GET', '/admin/users', { cookie: admin.cookie })).status).toBe(401);
  });

  it("share user sessions, and a key revoked through one process ends the session on the other", async () => {
    expect((await call(a.url, 'POST', '/admin/users', { headers: bearer, body: { id: 'grace' } })).status).toBe(201);
    const key = await call(a.url, 'POST', '/admin/users/grace/keys', { headers: bearer, body: {} });
    registerSecret(key.json.key);
    const grace = await signIn(b.url, key.json.key);
    expect((await call(a.url, 'GET', '/console/api/me', { cookie: grace.cookie })).json.user.id).toBe('grace');
    expect((await call(a.url, 'DELETE', `/admin/keys/${key.json.id}`, { headers: bearer })).status).toBe(200);
    expect((await call(b.url, 'GET', '/console/api/me', { cookie: grace.cookie })).status).toBe(401);
    expect((await call(a.url, 'GET', '/console/api/session', { cookie: grace.cookie })).status).toBe(401);
  });
});

describe('over TLS', () => {
  let dir: string;
  let gw: TestGateway;
  const agent = new Agent({ connect: { rejectUnauthorized: false } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyrelay-console-tls-'));
    // Node cannot make X.509 certificates; openssl (on every Debian) can.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=keyrelay console test'], { stdio: 'ignore' });
    gw = await startGateway({ config: { tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } } });
  });

  afterAll(async () => {
    await gw?.close();
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sets the cookie as __Host-, Secure, and takes a change only from its own https origin', async () => {
    const origin = `https://127.0.0.1:${gw.port}`;
    const res = await request(`${origin}/console/api/session`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: ADMIN_TOKEN }),
    });
    expect(res.statusCode).toBe(200);
    const session = (await res.body.json()) as { csrfToken: string };
    registerSecret(session.csrfToken);
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(/^__Host-keyrelay_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200; Secure$/);
    const cookie = setCookie.split(';')[0] as string;
    registerSecret(cookie.split('=')[1] as string);

    const change = (from: string, id: string) =>
      request(`${origin}/admin/users`, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': session.csrfToken, origin: from },
        body: JSON.stringify({ id }),
      });
    // The same host over plain http is another origin.
    const plain = await change(`http://127.0.0.1:${gw.port}`, 'plain');
    expect(plain.statusCode).toBe(403);
    expect(((await plain.body.json()) as { error: { code: string } }).error.code).toBe('csrf_failed');
    const same = await change(origin, 'secure');
    expect(same.statusCode).toBe(201);
    await same.body.dump();
    const out = await request(`${origin}/console/api/session`, { method: 'DELETE', dispatcher: agent, headers: { cookie, 'x-csrf-token': session.csrfToken } });
    expect(out.statusCode).toBe(204);
    expect(out.headers['set-cookie']).toEqual([
      '__Host-keyrelay_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure',
      'keyrelay_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure',
    ]);
  });
});
