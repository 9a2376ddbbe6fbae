// Attack the console's files and answers: paths out of its folder (dot segments raw and encoded,
// backslashes, NUL), every kind of error under /console (bad paths the router refuses, bad
// bodies, too large, wrong types, methods with no route) without the security headers, and the
// /console redirect made to point elsewhere.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECURITY_HEADERS } from '../src/console-server/headers.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { type RawAnswer, rawRequest } from './helpers/raw-socket.js';

registerSecret(ADMIN_TOKEN);

function expectHeaders(answer: RawAnswer, what: string): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(answer.headers[name], `${what}: ${name}`).toBe(value);
}

describe('the console against hostile requests', () => {
  let parent: string;
  let gw: TestGateway;

  beforeAll(async () => {
    parent = mkdtempSync(join(tmpdir(), 'keyrelay-console-'));
    const dir = join(parent, 'console');
    mkdirSync(join(dir, 'assets'), { recursive: true });
    writeFileSync(join(parent, 'package.json'), '{"name":"outside-the-console"}');
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>console</title>');
    writeFileSync(join(dir, 'assets', 'app-1a2b3c.js'), 'console.log(1)');
    gw = await startGateway({ consoleRoot: dir });
  });

  afterAll(async () => {
    await gw?.close();
    rmSync(parent, { recursive: true, force: true });
  });

  const raw = (head: string, body = '') => rawRequest(gw.port, `${head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n${body ? `content-length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`);

  it('serves nothing outside its folder, whatever the spelling, and answers with the headers', async () => {
    const paths = [
      '/console/assets/../../package.json',
      '/console/assets/%2e%2e/%2e%2e/package.json',
      '/console/assets/%2E%2E%2F%2E%2E%2Fpackage.json',
      '/console/assets/..%5c..%5cpackage.json',
      '/console/assets\\..\\..\\package.json',
      '/console/..\\package.json',
      '/console/assets/app-1a2b3c.js%00.html',
      '/console/assets/%00',
      '/console/%252e%252e/package.json',
      '/console/assets/.%2e/.%2e/package.json',
      '/console/assets//../../package.json',
      '/console/./../package.json',
    ];
    for (const path of paths) {
      const answer = await raw(`GET ${path} HTTP/1.1`);
      expect([400, 404], path).toContain(answer.status);
      expect(answer.body, path).not.toContain('outside-the-console');
      expectHeaders(answer, path);
    }
    // A NUL byte as it is in the target: Node refuses the request line itself.
    const nul = await rawRequest(gw.port, 'GET /console/assets/app-1a2b3c.js\u0000.html HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(nul.status).toBe(400);
    expect(nul.body).not.toContain('console.log');
  });

  it('puts the headers on every error under /console: bad escapes, bad bodies, too large, wrong type, unrouted methods', async () => {
    const cases: Array<[string, string, string?]> = [
      ['bad escape', 'GET /console/%zz HTTP/1.1'],
      ['overlong utf-8', 'GET /console/%c0%af HTTP/1.1'],
      ['bad json', 'POST /console/api/session HTTP/1.1\r\ncontent-type: application/json', '{"token":'],
      ['wrong type', 'POST /console/api/session HTTP/1.1\r\ncontent-type: application/xml', '<token/>'],
      ['too large', 'POST /console/api/session HTTP/1.1\r\ncontent-type: application/json', JSON.stringify({ token: 'x'.repeat(3_000_000) })],
      ['unrouted method', 'PUT /console/api/session HTTP/1.1'],
      ['post a page', 'POST /console/ HTTP/1.1'],
      ['options a page', 'OPTIONS /console/users HTTP/1.1'],
      ['no session', 'GET /console/api/me HTTP/1.1'],
      ['unknown api', 'DELETE /console/api/me/keys HTTP/1.1'],
    ];
    for (const [what, head, body] of cases) {
      const answer = await raw(head, body);
      expect(answer.status, what).toBeGreaterThanOrEqual(400);
      expectHeaders(answer, what);
    }
  });

  it('redirects /console only to its own /console/, whatever the Host or query', async () => {
    for (const head of ['GET /console HTTP/1.1\r\nX-Forwarded-Host: evil.example', 'GET /console?next=//evil.example HTTP/1.1', 'GET /console?%0d%0aLocation:%20http://evil.example HTTP/1.1']) {
      const answer = await rawRequest(gw.port, `${head}\r\nHost: evil.example\r\nConnection: close\r\n\r\n`);
      expect(answer.status, head).toBe(301);
      expect(answer.headers.location, head).toBe('/console/');
      expectHeaders(answer, head);
    }
  });
});
