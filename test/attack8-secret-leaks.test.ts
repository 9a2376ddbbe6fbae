// Attack by reading what the gateway writes: after sign-ins (right, wrong, near misses, a key sent
// as a field name), a user's key made and revoked through /me, and sign-out, no audit entry, log
// line, answer header or answer body other than the one meant for it holds the admin token, a
// key, a session cookie's value or a CSRF token. (test/setup.ts scans every log line for the
// registered secrets after the file.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { type ConsoleAnswer, call, consoleAnswers, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

registerSecret(ADMIN_TOKEN);

describe('secrets in what the gateway writes', () => {
  let redis: RedisServer;
  let gw: TestGateway;
  const secrets: string[] = [ADMIN_TOKEN];
  // The answers allowed to hold a secret: each sign-in's own (its CSRF token) and the key made.
  const allowed = new Set<ConsoleAnswer>();

  beforeAll(async () => {
    redis = await startRedis();
    gw = await startGateway({ env: { REDIS_URL: redis.url } });
  });

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  it('runs the console through sign-ins, key changes and sign-out', async () => {
    const key = await gw.createUserKey('leaky');
    registerSecret(key);
    secrets.push(key);
    const nearMisses = [`${ADMIN_TOKEN}x`, ADMIN_TOKEN.slice(0, -1), `${key}0`, key.toUpperCase(), ` ${ADMIN_TOKEN}`];
    for (const token of nearMisses) {
      registerSecret(token);
      secrets.push(token);
      expect((await call(gw.url, 'POST', '/console/api/session', { body: { token } })).status).toBe(401);
    }
    // A key sent as a field name, and as a token too long to take.
    const asField = await call(gw.url, 'POST', '/console/api/session', { body: { [key]: 'x' } });
    expect(asField.status).toBe(400);
    allowed.add(asField);
    expect((await call(gw.url, 'POST', '/console/api/session', { body: { token: key.repeat(20) } })).status).toBe(400);

    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const user = await signIn(gw.url, key);
    allowed.add(admin.answer);
    allowed.add(user.answer);
    for (const s of [admin, user]) secrets.push(s.cookie.split('=')[1] as string, s.csrf);

    const made = await call(gw.url, 'POST', '/console/api/me/keys', { cookie: user.cookie, csrf: user.csrf, body: { name: 'second' } });
    expect(made.status).toBe(201);
    registerSecret(made.json.key);
    secrets.push(made.json.key);
    allowed.add(made);
    expect((await call(gw.url, 'DELETE', `/console/api/me/keys/${made.json.id}`, { cookie: user.cookie, csrf: user.csrf })).status).toBe(200);
    expect((await call(gw.url, 'POST', '/admin/users', { cookie: admin.cookie, csrf: admin.csrf, body: { id: 'second-user' } })).status).toBe(201);
    for (const s of [user, admin]) expect((await call(gw.url, 'DELETE', '/console/api/session', { cookie: s.cookie, csrf: s.csrf })).status).toBe(204);
  });

  it('keeps every secret out of the audit log', async () => {
    const audit = await gw.admin('GET', '/audit?limit=1000');
    expect(audit.status).toBe(200);
    const text = JSON.stringify(audit.json);
    expect(audit.json.data.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['key.create', 'key.revoke', 'user.create']));
    for (const secret of secrets) expect(text).not.toContain(secret);
  });

  it('keeps every secret out of answers not meant for it, their headers included', () => {
    expect(consoleAnswers.length).toBeGreaterThan(10);
    for (const answer of consoleAnswers) {
      const headers = JSON.stringify([...answer.headers.entries()].filter(([name]) => name !== 'set-cookie'));
      for (const secret of secrets) {
        expect(headers).not.toContain(secret);
        if (!allowed.has(answer)) expect(answer.text).not.toContain(secret);
      }
    }
  });

  it('keeps the cookie values out of Redis: sessions are kept under their digests', async () => {
    const keys = await redis.cli('--scan', '--pattern', '*');
    expect(keys).toContain('kr:');
    for (const secret of secrets) expect(keys).not.toContain(secret);
  });
});
