// Only `Upgrade: websocket` is a WebSocket. An upgrade the gateway does not speak (`curl --http2`
// offers h2c on every request) is an ordinary HTTP request with the offer ignored (RFC 9110
// section 7.8): the answer is the usual one, on a connection that stays usable, and the upstream
// never sees the Upgrade header. A WebSocket upgrade to a path that has no WebSocket is still 404.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';
import { type RawAnswer, type RawConnection, openConnection, parseAnswer } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-h2c-upgrade-0123456789';
// What curl --http2 adds to a plain-text request.
const H2C_OFFER = ['Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA'];

let fake: FakeUpstream;
let gateway: TestGateway;
let userKey: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  userKey = await gateway.createUserKey('h2c-user');
  registerSecret(userKey);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});
beforeEach(() => fake.reset());

function head(requestLine: string, lines: string[], body = ''): string {
  const all = ['Host: 127.0.0.1', `Authorization: Bearer ${userKey}`, ...lines];
  if (body) all.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`);
  return `${requestLine}\r\n${all.join('\r\n')}\r\n\r\n${body}`;
}

/** The answers on one connection so far, each whole by its content-length. */
function answers(text: string): RawAnswer[] {
  const out: RawAnswer[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) return out;
    const parsed = parseAnswer(rest, false);
    const length = Number(parsed.headers['content-length'] ?? 0);
    const body = Buffer.from(rest.slice(end + 4), 'utf8');
    if (body.length < length) return out;
    out.push({ ...parsed, body: body.subarray(0, length).toString('utf8') });
    rest = body.subarray(length).toString('utf8');
  }
}

/** Sends `request` on the connection and resolves the answers once there are `count`. */
async function exchange(conn: RawConnection, request: string, count: number): Promise<RawAnswer[]> {
  conn.socket.write(request);
  await until(() => answers(conn.received()).length >= count || conn.socket.destroyed, `${count} answers`, 10_000);
  return answers(conn.received());
}

const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });

describe('an h2c upgrade offer is an ordinary request', () => {
  it('GET /v1/models: the usual 200, the connection kept for the next request', async () => {
    const conn = await openConnection(gateway.port);
    const [first] = await exchange(conn, head('GET /v1/models HTTP/1.1', H2C_OFFER), 1);
    expect(first?.status).toBe(200);
    expect(JSON.parse(first?.body ?? '')).toMatchObject({ object: 'list' });
    expect(first?.headers.upgrade).toBeUndefined();

    const [, second] = await exchange(conn, head('GET /v1/models HTTP/1.1', []), 2);
    expect(second?.status).toBe(200);
    conn.socket.destroy();

    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[0]?.headers.upgrade).toBeUndefined();
    expect(fake.requests[0]?.headers['http2-settings']).toBeUndefined();
  });

  it('POST /v1/chat/completions with a body: relayed whole, the upstream never sees Upgrade', async () => {
    const conn = await openConnection(gateway.port);
    const [answer] = await exchange(conn, head('POST /v1/chat/completions HTTP/1.1', H2C_OFFER, chat), 1);
    conn.socket.destroy();
    expect(answer?.status).toBe(200);
    expect(JSON.parse(answer?.body ?? '')).toMatchObject({ object: 'chat.completion' });
    expect(fake.requests).toHaveLength(1);
    const seen = fake.requests[0];
    expect(seen?.json).toEqual(JSON.parse(chat));
    expect(seen?.headers.upgrade).toBeUndefined();
    expect(seen?.headers.connection ?? '').not.toMatch(/upgrade/i);
  });

  it('Upgrade: h2c on a path the gateway itself answers (/healthz) is answered too', async () => {
    const conn = await openConnection(gateway.port);
    const [answer] = await exchange(conn, head('GET /healthz HTTP/1.1', H2C_OFFER), 1);
    conn.socket.destroy();
    expect(answer?.status).toBe(200);
  });
});

describe('over TLS', () => {
  let dir: string;
  let tlsGateway: TestGateway;
  beforeAll(async () => {
    // Node cannot make X.509 certificates; openssl (on every Debian) can.
    dir = mkdtempSync(join(tmpdir(), 'keyrelay-upgrade-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=keyrelay upgrade test'], { stdio: 'ignore' });
    tlsGateway = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
      config: { tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } },
    });
  });
  afterAll(async () => {
    await tlsGateway.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an upgrade offer that is not WebSocket gets the usual answer inside TLS, twice on one connection', async () => {
    const conn = await openConnection(tlsGateway.port, { tls: true });
    const offer = ['Connection: Upgrade', 'Upgrade: TLS/1.2, HTTP/2.0'];
    const [first] = await exchange(conn, head('GET /healthz HTTP/1.1', offer), 1);
    const [, second] = await exchange(conn, head('GET /healthz HTTP/1.1', offer), 2);
    conn.socket.destroy();
    expect(first?.status).toBe(200);
    expect(second?.status).toBe(200);
  });
});

describe('a WebSocket upgrade where there is no WebSocket', () => {
  it('GET /v1/models with Upgrade: websocket is still 404 unknown_url', async () => {
    const conn = await openConnection(gateway.port);
    const websocket = ['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='];
    const [answer] = await exchange(conn, head('GET /v1/models HTTP/1.1', websocket), 1);
    conn.socket.destroy();
    expect(answer?.status).toBe(404);
    expect(JSON.parse(answer?.body ?? '')).toMatchObject({ error: { code: 'unknown_url' } });
    expect(fake.requests).toHaveLength(0);
  });
});
