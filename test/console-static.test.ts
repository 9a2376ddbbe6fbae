// The console's files under /console: index.html for every page path, hashed assets cached for a
// year, compressed twins when the client takes them, nothing outside the folder, a page saying to
// build when there is no build; and the security headers on every /console answer, errors included.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECURITY_HEADERS } from '../src/console-server/headers.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { call, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

registerSecret(ADMIN_TOKEN);

const INDEX = '<!doctype html><html><head><script type="module" src="/console/assets/app-3f2a1b.js"></script></head><body></body></html>';
const SCRIPT = `console.log(${JSON.stringify('x'.repeat(2000))});`;
const CSP = SECURITY_HEADERS['content-security-policy'] as string;

function expectSecurityHeaders(headers: Headers | Record<string, string | string[] | undefined>, what: string): void {
  const get = (name: string) => (headers instanceof Headers ? headers.get(name) : (headers[name] as string | undefined));
  expect(get('content-security-policy'), what).toBe(CSP);
  expect(get('x-content-type-options'), what).toBe('nosniff');
  expect(get('referrer-policy'), what).toBe('no-referrer');
  expect(get('x-frame-options'), what).toBe('DENY');
  expect(get('cross-origin-opener-policy'), what).toBe('same-origin');
}

describe('the console files', () => {
  let dir: string;
  let outside: string;
  let gw: TestGateway;

  beforeAll(async () => {
    const parent = mkdtempSync(join(tmpdir(), 'keyrelay-console-'));
    dir = join(parent, 'console');
    outside = join(parent, 'secret.txt');
    writeFileSync(outside, 'not for the console');
    mkdirSync(join(dir, 'assets'), { recursive: true });
    writeFileSync(join(dir, 'index.html'), INDEX);
    writeFileSync(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    writeFileSync(join(dir, '.env'), 'SECRET=1');
    writeFileSync(join(dir, 'assets', 'app-3f2a1b.js'), SCRIPT);
    writeFileSync(join(dir, 'assets', 'app-3f2a1b.js.gz'), gzipSync(SCRIPT));
    writeFileSync(join(dir, 'assets', 'app-3f2a1b.js.br'), brotliCompressSync(SCRIPT));
    writeFileSync(join(dir, 'assets', 'style-9c8d7e.css'), 'body{color:black}');
    gw = await startGateway({ consoleRoot: dir });
  });

  afterAll(async () => {
    await gw?.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  });

  it('redirects /console to /console/', async () => {
    const res = await call(gw.url, 'GET', '/console');
    expect(res.status).toBe(301);
    expect(res.headers.get('location')).toBe('/console/');
    expectSecurityHeaders(res.headers, '/console');
  });

  it('serves index.html, not cached without asking, for /console/ and every page path', async () => {
    for (const path of ['/console/', '/console/users', '/console/users/john.doe', '/console/requests/abc/', '/console/index.html']) {
      const res = await call(gw.url, 'GET', path);
      expect(res.status, path).toBe(200);
      expect(res.text, path).toBe(INDEX);
      expect(res.headers.get('content-type'), path).toBe('text/html; charset=utf-8');
      expect(res.headers.get('cache-control'), path).toBe('no-cache');
      expectSecurityHeaders(res.headers, path);
    }
    const head = await call(gw.url, 'HEAD', '/console/');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    expectSecurityHeaders(head.headers, 'HEAD /console/');
  });

  it('serves hashed assets for a year, the br or gz twin when accepted, the plain file otherwise', async () => {
    const url = `${gw.url}/console/assets/app-3f2a1b.js`;
    const plain = await request(url, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.statusCode).toBe(200);
    expect(await plain.body.text()).toBe(SCRIPT);
    expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(plain.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expectSecurityHeaders(plain.headers as Record<string, string>, 'asset');

    const gz = await request(url, { headers: { 'accept-encoding': 'gzip' } });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers.vary).toContain('accept-encoding');
    const { gunzipSync, brotliDecompressSync } = await import('node:zlib');
    expect(gunzipSync(Buffer.from(await gz.body.arrayBuffer())).toString()).toBe(SCRIPT);

    const br = await request(url, { headers: { 'accept-encoding': 'gzip, br' } });
    expect(br.headers['content-encoding']).toBe('br');
    expect(brotliDecompressSync(Buffer.from(await br.body.arrayBuffer())).toString()).toBe(SCRIPT);

    const refusedBr = await request(url, { headers: { 'accept-encoding': 'br;q=0, gzip' } });
    expect(refusedBr.headers['content-encoding']).toBe('gzip');
    await refusedBr.body.arrayBuffer();

    // No twin: the plain file, whatever is accepted.
    const css = await request(`${gw.url}/console/assets/style-9c8d7e.css`, { headers: { 'accept-encoding': 'gzip, br' } });
    expect(css.headers['content-encoding']).toBeUndefined();
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(await css.body.text()).toBe('body{color:black}');

    const icon = await call(gw.url, 'GET', '/console/favicon.svg');
    expect(icon.headers.get('content-type')).toBe('image/svg+xml');
    expect(icon.headers.get('cache-control')).toBe('no-cache');
  });

  it('answers a missing asset 404, never with the page', async () => {
    const res = await call(gw.url, 'GET', '/console/assets/app-000000.js');
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe('not_found');
    expectSecurityHeaders(res.headers, 'missing asset');
  });

  it('serves nothing outside the folder and no dot file', async () => {
    const paths = ['/console/../secret.txt', '/console/%2e%2e/secret.txt', '/console/assets/..%2f..%2fsecret.txt', '/console/.env', '/console/%2Eenv', '/console/assets/%2e%2e/%2e%2e/secret.txt'];
    for (const path of paths) {
      const answer = await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(answer.body, path).not.toContain('not for the console');
      expect(answer.body, path).not.toContain('SECRET=1');
      expect(answer.headers['content-security-policy'], path).toBe(CSP);
    }
  });

  it('answers an unknown /console/api path 404 JSON, and every /console answer carries the headers', async () => {
    const unknown = await call(gw.url, 'GET', '/console/api/nothing');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe('unknown_url');
    expectSecurityHeaders(unknown.headers, 'unknown api');
    const post = await call(gw.url, 'POST', '/console/users', { body: {} });
    expect(post.status).toBe(404);
    expectSecurityHeaders(post.headers, 'POST page');
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    expectSecurityHeaders(admin.answer.headers, 'sign-in');
    const answers = [
      await call(gw.url, 'GET', '/console/api/session'),
      await call(gw.url, 'POST', '/console/api/session', { body: { token: 'wrong-token-0123456789' } }),
      await call(gw.url, 'POST', '/console/api/session', { body: 'not an object' }),
      await call(gw.url, 'DELETE', '/console/api/session', { cookie: admin.cookie }),
      await call(gw.url, 'GET', '/console/api/me', { cookie: admin.cookie }),
    ];
    expect(answers.map((a) => a.status)).toEqual([401, 401, 400, 403, 403]);
    for (const answer of answers) expectSecurityHeaders(answer.headers, `${answer.status}`);
    // Not elsewhere: the headers are the console's.
    const v1 = await call(gw.url, 'GET', '/v1/models');
    expect(v1.headers.get('content-security-policy')).toBeNull();
  });
});

describe('the console before it is built', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ consoleRoot: join(tmpdir(), 'keyrelay-no-console-here') });
  });
  afterAll(() => gw?.close());

  it('answers /console/ with a short page saying to run npm run build, with the headers', async () => {
    for (const path of ['/console/', '/console/users']) {
      const res = await call(gw.url, 'GET', path);
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.text).toContain('npm run build');
      expectSecurityHeaders(res.headers, path);
    }
    // Signing in does not need the pages.
    expect((await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN } })).status).toBe(200);
  });
});
