// /console/api/me over HTTP, on the in-memory store and on a real Redis: a user signed in with
// their key sees and changes only their own user, keys, requests and usage. Hostile: other
// users' key ids, a forced `user` query, path tricks, an admin's session, a missing CSRF token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { call, consoleAnswers, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import { type ObservedGateway, chat, startObservedGateway } from './helpers/observability-fixture.js';
import { rawRequest } from './helpers/raw-socket.js';

registerSecret(ADMIN_TOKEN);
const POOL_KEY = 'sk-pool-console-me-0123456789abcdefXYZ';

describe.each(['memory', 'redis'] as const)('/console/api/me on the %s store', (backend) => {
  let env: ObservedGateway;
  let url: string;
  let aliceKey: string;
  let bobKey: string;
  let alice: Awaited<ReturnType<typeof signIn>>;

  const v1 = (key: string, content: string) =>
    fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(chat(content)) });

  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, backend);
    url = env.gateway.url;
    aliceKey = await env.gateway.createUserKey('alice', { name: 'Alice', limits: { tokensPerDay: 100000 } });
    bobKey = await env.gateway.createUserKey('bob');
    registerSecret(aliceKey);
    registerSecret(bobKey);
    for (const [key, n] of [[aliceKey, 2], [bobKey, 3]] as const) {
      for (let i = 0; i < n; i++) expect((await v1(key, `hello ${i}`)).status).toBe(200);
    }
    alice = await signIn(url, aliceKey);
  });

  afterAll(() => env?.close());

  it('GET /me: the user as GET /admin/users/{id} shows them, usage and limits included', async () => {
    const me = await call(url, 'GET', '/console/api/me', { cookie: alice.cookie });
    expect(me.status).toBe(200);
    const admin = await env.gateway.admin('GET', '/users/alice');
    expect(me.json.user.id).toBe('alice');
    expect(me.json.user.limits).toEqual({ tokensPerDay: 100000 });
    expect(me.json.user.usage.day.requests).toBe(2);
    const { usage: _a, ...mine } = me.json.user;
    const { usage: _b, ...theirs } = admin.json;
    expect(mine).toEqual(theirs);
  });

  it('GET /me/keys: only their keys, never a secret nor a digest', async () => {
    const keys = await call(url, 'GET', '/console/api/me/keys', { cookie: alice.cookie });
    expect(keys.status).toBe(200);
    expect(keys.json).toEqual((await env.gateway.admin('GET', '/users/alice/keys')).json);
    expect(keys.json.data.every((k: { userId: string }) => k.userId === 'alice')).toBe(true);
    expect(keys.text).not.toContain('digest');
    expect(keys.text).not.toContain(aliceKey);
  });

  it('POST /me/keys: needs the CSRF token; makes a working key shown once; audited as the user', async () => {
    const refused = await call(url, 'POST', '/console/api/me/keys', { cookie: alice.cookie, body: { name: 'laptop' } });
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('csrf_failed');
    expect((await env.gateway.admin('GET', '/users/alice/keys')).json.data).toHaveLength(1);

    const created = await call(url, 'POST', '/console/api/me/keys', { cookie: alice.cookie, csrf: alice.csrf, body: { name: 'laptop' } });
    expect(created.status).toBe(201);
    registerSecret(created.json.key);
    expect(created.json).toMatchObject({ userId: 'alice', name: 'laptop', key: expect.stringMatching(/^sk-kr-/) });
    expect(created.json.digest).toBeUndefined();
    const models = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${created.json.key}` } });
    expect(models.status).toBe(200);
    const listed = await call(url, 'GET', '/console/api/me/keys', { cookie: alice.cookie });
    expect(listed.text).not.toContain(created.json.key);
    const entry = (await env.gateway.admin('GET', '/audit?limit=1')).json.data[0];
    expect(entry).toMatchObject({ actor: 'user:alice', action: 'key.create', target: `key:${created.json.id}` });

    const bad = await call(url, 'POST', '/console/api/me/keys', { cookie: alice.cookie, csrf: alice.csrf, body: { name: 'x', expiresAt: '2999-01-01T00:00:00Z' } });
    expect(bad.status).toBe(400);
    const badName = await call(url, 'POST', '/console/api/me/keys', { cookie: alice.cookie, csrf: alice.csrf, body: { name: 12 } });
    expect(badName.status).toBe(400);
    expect(badName.json.error.param).toBe('name');
  });

  it("DELETE /me/keys/{id}: another user's key id is not found and stays unrevoked; their own is revoked", async () => {
    const bobKeyId = (await env.gateway.admin('GET', '/users/bob/keys')).json.data[0].id as string;
    for (const id of [bobKeyId, 'key_doesnotexist00000', encodeURIComponent(`${bobKeyId}/../${bobKeyId}`)]) {
      const res = await call(url, 'DELETE', `/console/api/me/keys/${id}`, { cookie: alice.cookie, csrf: alice.csrf });
      expect([400, 404]).toContain(res.status);
    }
    expect((await env.gateway.admin('GET', '/users/bob/keys')).json.data[0].revokedAt).toBeUndefined();
    expect((await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${bobKey}` } })).status).toBe(200);

    const spare = await call(url, 'POST', '/console/api/me/keys', { cookie: alice.cookie, csrf: alice.csrf, body: null });
    expect(spare.status).toBe(201);
    registerSecret(spare.json.key);
    const revoked = await call(url, 'DELETE', `/console/api/me/keys/${spare.json.id}`, { cookie: alice.cookie, csrf: alice.csrf });
    expect(revoked.status).toBe(200);
    expect(revoked.json).toMatchObject({ id: spare.json.id, revokedAt: expect.any(String) });
    expect((await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${spare.json.key}` } })).status).toBe(401);
    expect((await env.gateway.admin('GET', '/audit?limit=1')).json.data[0]).toMatchObject({ actor: 'user:alice', action: 'key.revoke', target: `key:${spare.json.id}` });
  });

  it('GET /me/requests: only their requests, whatever `user` the query names', async () => {
    for (const query of ['', '?user=bob', '?user=alice&limit=1000', '?status=2xx']) {
      const res = await call(url, 'GET', `/console/api/me/requests${query}`, { cookie: alice.cookie });
      expect(res.status).toBe(200);
      expect(res.json.data.length).toBeGreaterThan(0);
      expect(res.json.data.every((r: { userId: string }) => r.userId === 'alice')).toBe(true);
    }
    const all = await env.gateway.admin('GET', '/requests?limit=1000');
    expect(all.json.data.some((r: { userId?: string }) => r.userId === 'bob')).toBe(true);
    const bad = await call(url, 'GET', '/console/api/me/requests?limit=zero', { cookie: alice.cookie });
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe('limit');
  });

  it('GET /me/usage: their usage only, as /admin/usage answers it for them', async () => {
    const mine = await call(url, 'GET', '/console/api/me/usage?user=bob&groupBy=user', { cookie: alice.cookie });
    expect(mine.status).toBe(200);
    expect(mine.json.user).toBe('alice');
    expect(mine.json).toEqual((await env.gateway.admin('GET', '/usage?user=alice&groupBy=user')).json);
    expect(mine.json.total.requests).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(mine.json)).not.toContain('bob');
  });

  it('refuses /me to no session (401) and to an admin session (403), and /me routes to a user on /admin', async () => {
    expect((await call(url, 'GET', '/console/api/me')).status).toBe(401);
    const admin = await signIn(url, ADMIN_TOKEN);
    const res = await call(url, 'GET', '/console/api/me/keys', { cookie: admin.cookie });
    expect(res.status).toBe(403);
    // A bearer key is not a console session either.
    expect((await call(url, 'GET', '/console/api/me', { headers: { authorization: `Bearer ${aliceKey}` } })).status).toBe(401);
  });

  it('path tricks reach neither /admin nor another user: dot segments, encoded slashes and dots', async () => {
    const tricks = [
      '/console/api/me/../../admin/users',
      '/console/api/me/..%2F..%2Fadmin/users',
      '/console/api/me/%2e%2e/%2e%2e/admin/users',
      '/console/api/me/keys/..%2fkeys',
      '/console/api/me%2F..%2F..%2Fadmin%2Fusers',
      '/console/api//me',
      '/console/api/me/./keys/../../../admin/users',
      '/console/api/me\\..\\..\\admin\\users',
    ];
    for (const path of tricks) {
      const answer = await rawRequest(env.gateway.port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${alice.cookie}\r\nConnection: close\r\n\r\n`);
      expect([400, 404], path).toContain(answer.status);
      expect(answer.body, path).not.toContain('"data"');
      expect(answer.headers['content-security-policy'], path).toContain("frame-ancestors 'none'");
    }
    const admin = await rawRequest(env.gateway.port, `GET /admin/users HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${alice.cookie}\r\nConnection: close\r\n\r\n`);
    expect(admin.status).toBe(401);
  });

  it('puts no admin token or key in any answer but the one that creates a key', () => {
    for (const answer of consoleAnswers) {
      expect(answer.text).not.toContain(ADMIN_TOKEN);
      expect(answer.text).not.toContain(bobKey);
      expect(answer.text).not.toContain(aliceKey);
      expect(answer.text).not.toContain(POOL_KEY);
    }
  });
});
