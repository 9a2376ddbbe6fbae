// Attack with the session cookie where it must mean nothing, and with cookie headers built to
// break the parser: the cookie on /v1 and on WebSocket upgrades (never a credential there, never
// passed upstream), a huge cookie header, hundreds of cookies, malformed and tossed cookies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { type SignedIn, call, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

registerSecret(ADMIN_TOKEN);
const POOL_KEY = 'sk-pool-cookie-transport-1';
registerSecret(POOL_KEY);

describe('the session cookie off the console', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let aliceKey: string;
  let admin: SignedIn;
  let alice: SignedIn;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ keys: [POOL_KEY] });
    gw = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: upstream.baseUrl } });
    aliceKey = await gw.createUserKey('alice');
    registerSecret(aliceKey);
    admin = await signIn(gw.url, ADMIN_TOKEN);
    alice = await signIn(gw.url, aliceKey);
  });

  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  /** The status of a WebSocket handshake, or 101. */
  const handshake = (path: string, headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${gw.port}${path}`, { headers });
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
      ws.on('unexpected-response', (_req, res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      ws.on('error', reject);
    });

  it('is no credential on a WebSocket upgrade, and no upstream connection is made', async () => {
    for (const session of [admin, alice]) {
      for (const path of ['/v1/realtime?model=gpt-4o-realtime-preview', '/v1/responses']) {
        const status = await handshake(path, { cookie: session.cookie, 'x-csrf-token': session.csrf, origin: gw.url });
        expect(status, path).toBe(401);
      }
    }
    expect(upstream.wsConnections).toHaveLength(0);
  });

  it('is never passed upstream when a page of the gateway calls /v1 with a key and its cookie', async () => {
    upstream.reset();
    const res = await call(gw.url, 'POST', '/v1/chat/completions', {
      cookie: `${alice.cookie}; other=1`,
      headers: { authorization: `Bearer ${aliceKey}` },
      body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]?.headers.cookie).toBeUndefined();
    expect(upstream.requests[0]?.headers['x-csrf-token']).toBeUndefined();
  });
});

describe('cookie headers built to break the parser', () => {
  let gw: TestGateway;
  let admin: SignedIn;

  beforeAll(async () => {
    gw = await startGateway();
    admin = await signIn(gw.url, ADMIN_TOKEN);
  });

  afterAll(() => gw?.close());

  const session = (cookieHeader: string | Buffer) =>
    rawRequest(gw.port, Buffer.concat([Buffer.from('GET /console/api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: '), Buffer.from(cookieHeader), Buffer.from('\r\nConnection: close\r\n\r\n')]));

  it('reads the session among hundreds of other cookies', async () => {
    const others = Array.from({ length: 300 }, (_, i) => `c${i}=${'v'.repeat(10)}`).join('; ');
    const answer = await session(`${others}; ${admin.cookie}`);
    expect(answer.status).toBe(200);
  });

  it('answers a huge cookie header, or a malformed or tossed cookie, as no session: 401 with the headers, never a 500', async () => {
    const value = admin.cookie.split('=')[1] as string;
    const headers: Array<string | Buffer> = [
      `pad=${'x'.repeat(9000)}; ${admin.cookie}`,
      'keyrelay_session',
      'keyrelay_session=',
      '=; ;;; =keyrelay_session',
      `keyrelay_session="${value}"`,
      `KEYRELAY_SESSION=${value}`,
      `keyrelay_session=${value}x`,
      `keyrelay_session=${value.slice(0, -1)}%41`,
      `${admin.cookie}; keyrelay_session=${'A'.repeat(43)}`,
      `keyrelay_session=${'A'.repeat(43)}; ${admin.cookie}`,
      Buffer.concat([Buffer.from('keyrelay_session='), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from(value.slice(4))]),
    ];
    for (const header of headers) {
      const answer = await session(header);
      const label = String(header).slice(0, 60);
      expect(answer.status, label).toBe(401);
      expect(JSON.parse(answer.body).error.code, label).toBe('no_session');
      expect(answer.headers['x-frame-options'], label).toBe('DENY');
    }
    // The real session is untouched by all that.
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: admin.cookie })).status).toBe(200);
  });

  it('answers a cookie header past what Node takes with a 431, not a crash', async () => {
    const answer = await session(`pad=${'x'.repeat(70_000)}; ${admin.cookie}`);
    expect(answer.status).toBe(431);
    expect((await call(gw.url, 'GET', '/console/api/session', { cookie: admin.cookie })).status).toBe(200);
  });
});
