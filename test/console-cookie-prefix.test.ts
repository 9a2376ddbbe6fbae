// Attack on the session cookie from a sibling subdomain: over https the cookie is
// `__Host-keyrelay_session` (Secure, Path=/, no Domain), which a browser takes only from this very
// host, so a page on another subdomain cannot set or shadow it; a plain-named cookie there is not
// read at all (it may be one such a page planted). A browser still holding the plain name from
// before signs out cleanly: its session ends and both names are cleared. Over http the name stays
// plain (a browser refuses __Host- without Secure).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { call, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';

registerSecret(ADMIN_TOKEN);

const CLEARED = [
  '__Host-keyrelay_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure',
  'keyrelay_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure',
];

describe('the session cookie over TLS', () => {
  let dir: string;
  let gw: TestGateway;
  let origin: string;
  const agent = new Agent({ connect: { rejectUnauthorized: false } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyrelay-cookie-prefix-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=keyrelay cookie test'], { stdio: 'ignore' });
    gw = await startGateway({ config: { tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } } });
    origin = `https://127.0.0.1:${gw.port}`;
  });

  afterAll(async () => {
    await gw?.close();
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function send(method: string, path: string, headers: Record<string, string>, body?: unknown) {
    const res = await request(`${origin}${path}`, {
      method: method as 'GET',
      dispatcher: agent,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, setCookie: res.headers['set-cookie'], json: text ? JSON.parse(text) : undefined };
  }

  async function adminSession() {
    const res = await send('POST', '/console/api/session', {}, { token: ADMIN_TOKEN });
    expect(res.status).toBe(200);
    const [, value = ''] = /^__Host-keyrelay_session=([A-Za-z0-9_-]{43}); HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200; Secure$/.exec(String(res.setCookie)) ?? [];
    expect(value).not.toBe('');
    registerSecret(value);
    registerSecret(res.json.csrfToken);
    return { value, csrf: res.json.csrfToken as string };
  }

  it('gives out exactly one __Host- cookie: Secure, Path=/, no Domain', async () => {
    const res = await send('POST', '/console/api/session', {}, { token: ADMIN_TOKEN });
    expect(res.status).toBe(200);
    expect(typeof res.setCookie).toBe('string');
    expect(res.setCookie).toMatch(/^__Host-keyrelay_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200; Secure$/);
    registerSecret(String(res.setCookie).split(';')[0]!.split('=')[1]!);
    registerSecret(res.json.csrfToken);
  });

  it('does not read a plain-named cookie over https, even one naming a live session', async () => {
    const { value } = await adminSession();
    expect((await send('GET', '/console/api/session', { cookie: `__Host-keyrelay_session=${value}` })).status).toBe(200);
    const planted = await send('GET', '/console/api/session', { cookie: `keyrelay_session=${value}` });
    expect(planted.status).toBe(401);
    expect(planted.json.error.code).toBe('no_session');
    expect((await send('GET', '/admin/users', { cookie: `keyrelay_session=${value}` })).status).toBe(401);
  });

  it('is not shadowed by a plain-named cookie a sibling subdomain planted beside it', async () => {
    const mine = await adminSession();
    const theirs = await adminSession();
    // Sent first, as a cookie with a longer path or set earlier would be.
    const cookie = `keyrelay_session=${theirs.value}; __Host-keyrelay_session=${mine.value}`;
    const read = await send('GET', '/console/api/session', { cookie });
    expect(read.status).toBe(200);
    expect(read.json.csrfToken).toBe(mine.csrf);
    // A change with the planted cookie's CSRF token is refused: the session is the __Host- one.
    const forged = await send('POST', '/admin/users', { cookie, 'x-csrf-token': theirs.csrf, origin }, { id: 'planted' });
    expect(forged.status).toBe(403);
    expect(forged.json.error.code).toBe('csrf_failed');
  });

  it('signs out a browser holding the former plain name: its session ends and both names are cleared', async () => {
    const { value } = await adminSession();
    const out = await send('DELETE', '/console/api/session', { cookie: `keyrelay_session=${value}`, origin });
    expect(out.status).toBe(204);
    expect(out.setCookie).toEqual(CLEARED);
    expect((await send('GET', '/console/api/session', { cookie: `__Host-keyrelay_session=${value}` })).status).toBe(401);
  });

  it('signing in again ends the session of a former plain-named cookie and clears it', async () => {
    const { value } = await adminSession();
    const again = await send('POST', '/console/api/session', { cookie: `keyrelay_session=${value}` }, { token: ADMIN_TOKEN });
    expect(again.status).toBe(200);
    registerSecret(again.json.csrfToken);
    const [issued, cleared] = again.setCookie as string[];
    registerSecret(String(issued).split(';')[0]!.split('=')[1]!);
    expect(issued).toMatch(/^__Host-keyrelay_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200; Secure$/);
    expect(cleared).toBe(CLEARED[1]);
    expect((await send('GET', '/console/api/session', { cookie: `__Host-keyrelay_session=${value}` })).status).toBe(401);
  });
});

describe('the session cookie over plain http', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw?.close());

  it('keeps the plain name, without Secure, and clears only it; a __Host- name is not read', async () => {
    const session = await signIn(gw.url, ADMIN_TOKEN);
    expect(session.setCookie).toMatch(/^keyrelay_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200$/);
    const value = session.cookie.split('=')[1]!;
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: `__Host-keyrelay_session=${value}` })).status).toBe(401);
    const out = await call(gw.url, 'DELETE', '/console/api/session', { cookie: session.cookie, csrf: session.csrf });
    expect(out.status).toBe(204);
    expect(out.headers.getSetCookie()).toEqual(['keyrelay_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0']);
  });
});
