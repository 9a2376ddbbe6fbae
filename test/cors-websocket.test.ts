// WebSocket upgrades check the page's Origin as HTTP requests do (README, "The relay";
// docs/browsers.md): browsers do not guard WebSockets with CORS, so an Origin the gateway or the
// user does not allow is refused with 403 before the 101 and before any upstream connection.
// No Origin is a client other than a browser: allowed, unless the user has origins.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { registerSecret } from './helpers/log-capture.js';

const PAGE = 'https://chat.example';
const SECOND = 'https://second.example';
const OTHER = 'https://evil.example';

type Opened = { opened: true; firstMessage: string } | { opened: false; status: number; body: string };

/** Opens /v1/realtime with the key in the browsers' subprotocol; what the handshake came to. */
function open(baseUrl: string, key: string, origin: string | undefined): Promise<Opened> {
  const url = `${baseUrl.replace('http://', 'ws://')}/realtime?model=gpt-4o-realtime-preview`;
  const ws = new WebSocket(url, ['realtime', `openai-insecure-api-key.${key}`], origin === undefined ? {} : { origin });
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => {
      resolve({ opened: true, firstMessage: String(data) });
      ws.close();
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => resolve({ opened: false, status: res.statusCode ?? 0, body }));
    });
    ws.once('error', (err) => reject(err));
  });
}

describe('with cors.origins', () => {
  let relay: RelayFixture;
  let pageKey: string;
  beforeAll(async () => {
    relay = await startRelay('sk-pool-cors-ws-1', {}, { cors: { origins: [PAGE, SECOND] } });
    pageKey = await relay.gateway.createUserKey('ws-page-user', { origins: [PAGE] });
    registerSecret(pageKey);
  });
  afterAll(() => relay.close());

  it('opens for a listed page, and for a client with no Origin', async () => {
    for (const origin of [PAGE, SECOND, undefined]) {
      const result = await open(relay.gateway.baseUrl, relay.userKey, origin);
      expect(result, String(origin)).toMatchObject({ opened: true });
      if (result.opened) expect(JSON.parse(result.firstMessage).type).toBe('session.created');
    }
    // The page's origin stays with the gateway.
    expect(relay.fake.wsConnections.every((c) => c.headers.origin === undefined)).toBe(true);
  });

  it('refuses a page not listed with 403 origin_not_allowed, before the key and any upstream connection', async () => {
    const before = relay.fake.wsConnections.length;
    for (const key of [relay.userKey, 'sk-kr-not-a-key-at-all']) {
      const result = await open(relay.gateway.baseUrl, key, OTHER);
      expect(result).toMatchObject({ opened: false, status: 403 });
      if (!result.opened) {
        expect(JSON.parse(result.body)).toEqual({
          error: { message: `Pages of ${OTHER} may not open WebSockets to this gateway (cors.origins).`, type: 'invalid_request_error', param: null, code: 'origin_not_allowed' },
        });
      }
    }
    expect(relay.fake.wsConnections.length).toBe(before);
  });

  it("refuses a user's key from a listed page the user does not allow, and with no Origin; nothing opens upstream", async () => {
    const before = relay.fake.wsConnections.length;
    const fromSecond = await open(relay.gateway.baseUrl, pageKey, SECOND);
    expect(fromSecond).toMatchObject({ opened: false, status: 403 });
    if (!fromSecond.opened) expect(JSON.parse(fromSecond.body).error.code).toBe('origin_not_allowed');
    const withoutOrigin = await open(relay.gateway.baseUrl, pageKey, undefined);
    expect(withoutOrigin).toMatchObject({ opened: false, status: 403 });
    expect(relay.fake.wsConnections.length).toBe(before);
    const fromPage = await open(relay.gateway.baseUrl, pageKey, PAGE);
    expect(fromPage).toMatchObject({ opened: true });
  });
});

describe('without cors.origins (the default)', () => {
  let relay: RelayFixture;
  beforeAll(async () => {
    relay = await startRelay('sk-pool-cors-ws-2');
  });
  afterAll(() => relay.close());

  it('opens from any page, as before; a user with origins is still held to them', async () => {
    expect(await open(relay.gateway.baseUrl, relay.userKey, OTHER)).toMatchObject({ opened: true });
    const pageKey = await relay.gateway.createUserKey('ws-default-page-user', { origins: [PAGE] });
    registerSecret(pageKey);
    expect(await open(relay.gateway.baseUrl, pageKey, PAGE)).toMatchObject({ opened: true });
    expect(await open(relay.gateway.baseUrl, pageKey, OTHER)).toMatchObject({ opened: false, status: 403 });
  });
});
