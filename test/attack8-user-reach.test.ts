// Attack as a user signed in to the console with their own key: reach /admin or another user's
// keys, requests and usage by path tricks (case, encoded letters, matrix parameters, rewrite
// headers), other methods (HEAD, OPTIONS), or their own key as a bearer token on /admin.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { type SignedIn, call, consoleAnswers, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

registerSecret(ADMIN_TOKEN);

describe('a user session against /admin and other users', () => {
  let gw: TestGateway;
  let aliceKey: string;
  let bobKey: string;
  let bobKeyId: string;
  let alice: SignedIn;

  beforeAll(async () => {
    gw = await startGateway();
    aliceKey = await gw.createUserKey('alice');
    bobKey = await gw.createUserKey('bob');
    registerSecret(aliceKey);
    registerSecret(bobKey);
    bobKeyId = (await gw.admin('GET', '/users/bob/keys')).json.data[0].id;
    alice = await signIn(gw.url, aliceKey);
  });

  afterAll(() => gw?.close());

  const raw = (method: string, path: string, extra = '') =>
    rawRequest(gw.port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${alice.cookie}\r\nx-csrf-token: ${alice.csrf}\r\n${extra}Connection: close\r\n\r\n`);

  it('gets no admin answer by case, encoded letters, matrix parameters or rewrite headers', async () => {
    const paths = [
      '/admin/users',
      '/Admin/users',
      '/ADMIN/USERS',
      '/%61dmin/users',
      '/admin/%75sers',
      '/admin/users/%62ob/keys',
      '/admin/users;role=admin',
      '/admin/users?user=alice',
      '/admin/audit',
      '/admin/requests',
      '/admin/usage',
      '/admin/webhooks',
    ];
    for (const path of paths) {
      for (const method of ['GET', 'HEAD']) {
        const answer = await raw(method, path);
        expect([400, 401, 404], `${method} ${path}`).toContain(answer.status);
        expect(answer.body, path).not.toContain('"data"');
        expect(answer.body, path).not.toContain('bob');
      }
    }
    for (const header of ['X-Original-URL: /admin/users', 'X-Rewrite-URL: /admin/users', 'X-Forwarded-Prefix: /admin']) {
      const answer = await raw('GET', '/console/api/me', `${header}\r\n`);
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body).user.id).toBe('alice');
    }
  });

  it('changes nothing on /admin with the cookie and its CSRF token, nor with their own key as the bearer', async () => {
    const made = await call(gw.url, 'POST', '/admin/users', { cookie: alice.cookie, csrf: alice.csrf, body: { id: 'mallory' } });
    expect(made.status).toBe(401);
    const asBearer = await call(gw.url, 'POST', '/admin/users', { headers: { authorization: `Bearer ${aliceKey}` }, body: { id: 'mallory' } });
    expect(asBearer.status).toBe(401);
    const raised = await call(gw.url, 'PATCH', '/admin/users/alice', { cookie: alice.cookie, csrf: alice.csrf, body: { limits: null } });
    expect(raised.status).toBe(401);
    const options = await raw('OPTIONS', '/admin/users');
    expect([401, 404]).toContain(options.status);
    expect((await gw.admin('GET', '/users/mallory')).status).toBe(404);
  });

  it("cannot revoke bob's key by any spelling of its id, nor read bob's things through /me", async () => {
    const spellings = [bobKeyId, encodeURIComponent(bobKeyId), bobKeyId.toUpperCase(), `${bobKeyId}%20`, `${bobKeyId}%00`, `${bobKeyId};x`, `%2e%2e/${bobKeyId}`];
    for (const id of spellings) {
      const answer = await raw('DELETE', `/console/api/me/keys/${id}`);
      expect([400, 404], id).toContain(answer.status);
    }
    expect((await gw.admin('GET', '/users/bob/keys')).json.data[0].revokedAt).toBeUndefined();
    for (const path of ['/console/api/me?user=bob', '/console/api/me/keys?user=bob', '/console/api/me/usage?user=bob', '/console/api/me/requests?user=bob&user=alice']) {
      const answer = await call(gw.url, 'GET', path, { cookie: alice.cookie });
      expect(answer.text, path).not.toContain('"bob"');
    }
    // bob's key still works: nothing of bob's changed.
    const models = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${bobKey}` } });
    expect(models.status).not.toBe(401);
    await models.arrayBuffer();
  });

  it('puts no key, admin token or cookie in any answer', () => {
    for (const answer of consoleAnswers) {
      for (const secret of [ADMIN_TOKEN, aliceKey, bobKey, alice.cookie.split('=')[1] as string]) expect(answer.text).not.toContain(secret);
    }
  });
});
