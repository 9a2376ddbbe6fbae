// Attack: a change by the victim's session cookie without its CSRF token, or from another
// origin, as HTTP requests a page elsewhere (or an old browser) could make: Origin null, no Origin
// but a Referer from elsewhere, another scheme or port, text/plain and form bodies, method
// override headers on a GET, OPTIONS, another session's token. Nothing may change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { call, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';

registerSecret(ADMIN_TOKEN);

describe('CSRF on the console and /admin', () => {
  let gw: TestGateway;
  let aliceKey: string;

  beforeAll(async () => {
    gw = await startGateway();
    aliceKey = await gw.createUserKey('alice');
    registerSecret(aliceKey);
    await gw.createUserKey('bob');
  });

  afterAll(() => gw?.close());

  const userIds = async () => (await gw.admin('GET', '/users')).json.data.map((u: { id: string }) => u.id).sort();

  it('refuses a sign-in with Origin null, or with no Origin and a Referer from elsewhere, and sets no cookie', async () => {
    const refused: Array<Record<string, string>> = [
      { origin: 'null' },
      { referer: 'http://evil.example/login.html' },
      { referer: `https://127.0.0.1:${gw.port}/console/` },
      { referer: 'not a url' },
      { referer: 'data:text/html,hello' },
    ];
    for (const headers of refused) {
      const res = await call(gw.url, 'POST', '/console/api/session', { body: { token: aliceKey }, headers });
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.json.error.code).toBe('csrf_failed');
      expect(res.headers.get('set-cookie')).toBeNull();
    }
    // Its own origin in the Referer, or no Referer at all: signed in.
    expect((await call(gw.url, 'POST', '/console/api/session', { body: { token: aliceKey }, headers: { referer: `${gw.url}/console/` } })).status).toBe(200);
    expect((await call(gw.url, 'POST', '/console/api/session', { body: { token: aliceKey } })).status).toBe(200);
  });

  it('refuses a change with the right token from Origin null, another scheme or port, or a Referer from elsewhere', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const before = await userIds();
    const refused: Array<Record<string, string>> = [
      { origin: 'null' },
      { origin: `https://127.0.0.1:${gw.port}` },
      { origin: `http://127.0.0.1:${gw.port + 1}` },
      { origin: `http://localhost:${gw.port}` },
      { referer: 'http://evil.example/' },
      { referer: `http://127.0.0.1:${gw.port}.evil.example/` },
    ];
    for (const headers of refused) {
      const res = await call(gw.url, 'POST', '/admin/users', { cookie: admin.cookie, csrf: admin.csrf, body: { id: 'mallory' }, headers });
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.json.error.code).toBe('csrf_failed');
      const out = await call(gw.url, 'DELETE', '/console/api/session', { cookie: admin.cookie, csrf: admin.csrf, headers });
      expect(out.status).toBe(403);
    }
    expect(await userIds()).toEqual(before);
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: admin.cookie })).status).toBe(200);
  });

  it('refuses text/plain and form bodies without the token, and a token given twice', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const before = await userIds();
    for (const [type, body] of [
      ['text/plain', JSON.stringify({ id: 'mallory' })],
      ['application/x-www-form-urlencoded', 'id=mallory'],
      ['multipart/form-data; boundary=x', '--x\r\ncontent-disposition: form-data; name="id"\r\n\r\nmallory\r\n--x--\r\n'],
    ] as const) {
      const res = await fetch(`${gw.url}/admin/users`, { method: 'POST', headers: { cookie: admin.cookie, 'content-type': type }, body });
      expect(res.status, type).toBe(403);
    }
    // Two x-csrf-token headers, the right one among them: one header of both, not the token.
    const twice = await fetch(`${gw.url}/admin/users`, {
      method: 'POST',
      headers: [['cookie', admin.cookie], ['content-type', 'application/json'], ['x-csrf-token', admin.csrf], ['x-csrf-token', admin.csrf]],
      body: JSON.stringify({ id: 'mallory' }),
    });
    expect(twice.status).toBe(403);
    expect(await userIds()).toEqual(before);
  });

  it("refuses one session's CSRF token with another session's cookie", async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const alice = await signIn(gw.url, aliceKey);
    const res = await call(gw.url, 'POST', '/admin/users', { cookie: admin.cookie, csrf: alice.csrf, body: { id: 'mallory' } });
    expect(res.status).toBe(403);
    const key = await call(gw.url, 'POST', '/console/api/me/keys', { cookie: alice.cookie, csrf: admin.csrf, body: {} });
    expect(key.status).toBe(403);
    expect((await gw.admin('GET', '/users/alice/keys')).json.data).toHaveLength(1);
  });

  it('takes no method override: a GET with override headers or _method changes nothing', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const overrides = { 'x-http-method-override': 'DELETE', 'x-http-method': 'DELETE', 'x-method-override': 'DELETE' };
    const read = await call(gw.url, 'GET', '/console/api/session?_method=DELETE', { cookie: admin.cookie, headers: overrides });
    expect(read.status).toBe(200);
    expect(read.headers.get('set-cookie')).toBeNull();
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: admin.cookie })).status).toBe(200);
    const bob = await call(gw.url, 'GET', '/admin/users/bob?_method=DELETE', { cookie: admin.cookie, headers: overrides });
    expect(bob.status).toBe(200);
    expect((await gw.admin('GET', '/users/bob')).status).toBe(200);
    // A POST that asks to be taken as a GET still needs the token.
    const post = await call(gw.url, 'POST', '/admin/users', { cookie: admin.cookie, body: { id: 'mallory' }, headers: { 'x-http-method-override': 'GET' } });
    expect(post.status).toBe(403);
    expect((await gw.admin('GET', '/users/mallory')).status).toBe(404);
  });

  it("lets no other origin read the session's CSRF token: no CORS headers on /console or /admin", async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const headers = { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-csrf-token, content-type' };
    for (const [method, path] of [['GET', '/console/api/session'], ['OPTIONS', '/console/api/session'], ['OPTIONS', '/admin/users'], ['GET', '/admin/users'], ['GET', '/console/api/me']]) {
      const res = await call(gw.url, method as string, path as string, { cookie: admin.cookie, headers });
      expect(res.headers.get('access-control-allow-origin'), `${method} ${path}`).toBeNull();
      expect(res.headers.get('access-control-allow-credentials'), `${method} ${path}`).toBeNull();
    }
  });

  it('refuses OPTIONS, PUT and PATCH by cookie without the token', async () => {
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    for (const method of ['OPTIONS', 'PUT', 'PATCH', 'DELETE']) {
      const res = await call(gw.url, method, '/admin/users/bob', { cookie: admin.cookie, ...(method === 'PATCH' ? { body: { name: 'x' } } : {}) });
      expect(res.status, method).toBe(403);
    }
    expect((await gw.admin('GET', '/users/bob')).json.name).toBeUndefined();
  });
});
