// A user's WebSocket handshake answer carries nothing of the pool key behind it: the 101 follows
// the rules of an HTTP answer (src/relay/headers.ts). The pool key's cookies, account, rate limits
// and auth challenges are dropped, and a header that echoes the key is masked.
import type { IncomingMessage } from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-websocket-headers-00000001';

// What the upstream adds to its 101; none of it is the user's.
const POOL_KEY_HEADERS = {
  'x-ratelimit-limit-requests': '10000',
  'x-ratelimit-remaining-requests': '9999',
  'x-ratelimit-reset-tokens': '1ms',
  'www-authenticate': 'Bearer realm="OpenAI"',
  'set-cookie': '__cf_bm=pool; path=/',
  'set-cookie2': 'legacy=pool; Version=1',
  'openai-organization': 'org-pool',
  'openai-project': 'proj_pool',
};

let fake: FakeUpstream;
let gateway: TestGateway;
let userKey: string;
const clients: WebSocket[] = [];

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream({ keys: [POOL_KEY] });
  gateway = await startGateway({
    env: { KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: {
      upstreams: [
        {
          id: 'main',
          baseUrl: fake.baseUrl,
          models: ['*'],
          strategy: 'round-robin',
          keys: [{ id: 'k1', key: POOL_KEY, weight: 1, organization: 'org-pool', project: 'proj_pool' }],
        },
      ],
    },
  });
  userKey = await gateway.createUserKey('ws-headers-user');
  registerSecret(userKey);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});
beforeEach(() => fake.reset());
afterEach(() => {
  for (const ws of clients.splice(0)) {
    ws.on('error', () => {});
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  }
});

/** Opens a WebSocket through the gateway; resolves the 101's headers, raw and parsed. */
function handshake(path: string): Promise<{ headers: IncomingMessage['headers']; raw: string[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`, { headers: { authorization: `Bearer ${userKey}` } });
  clients.push(ws);
  return new Promise((resolve, reject) => {
    ws.once('upgrade', (res: IncomingMessage) => resolve({ headers: res.headers, raw: res.rawHeaders }));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => reject(new Error(`refused with ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

describe('the 101 of a WebSocket upgrade', () => {
  for (const path of ['/v1/realtime?model=gpt-realtime', '/v1/responses']) {
    it(`${path.split('?')[0]}: drops the pool key's rate limits, cookies, account and challenges`, async () => {
      fake.upgradeHeaders(() => POOL_KEY_HEADERS);
      const { headers } = await handshake(path);
      for (const name of Object.keys(POOL_KEY_HEADERS)) expect(headers[name], name).toBeUndefined();
      expect(Object.keys(headers).filter((name) => name.startsWith('x-ratelimit-'))).toEqual([]);
      // Still a WebSocket handshake, with the gateway's request id.
      expect(headers.upgrade?.toLowerCase()).toBe('websocket');
      expect(headers['sec-websocket-accept']).toBeTruthy();
      expect(headers['x-keyrelay-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    });
  }

  it('masks a header that echoes the pool key', async () => {
    fake.upgradeHeaders((upgrade) => ({
      'x-echo-authorization': String(upgrade.headers.authorization),
      'x-debug': `key=${POOL_KEY}; org=org-pool`,
    }));
    const { headers, raw } = await handshake('/v1/realtime?model=gpt-realtime');
    expect(raw.join('\n')).not.toContain(POOL_KEY);
    expect(headers['x-echo-authorization']).toBe('Bearer sk-***0001');
    expect(headers['x-debug']).toBe('key=sk-***0001; org=org-pool');
  });

  it('keeps the rest, as an HTTP answer does: the upstream request id, its timing', async () => {
    fake.upgradeHeaders(() => ({ 'x-request-id': 'req_upstream_ws', 'openai-processing-ms': '3' }));
    const { headers } = await handshake('/v1/realtime?model=gpt-realtime');
    expect(headers['x-request-id']).toBe('req_upstream_ws');
    expect(headers['openai-processing-ms']).toBe('3');
  });
});
