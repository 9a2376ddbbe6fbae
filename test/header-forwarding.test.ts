// Which headers cross the gateway in each direction (docs/reliability.md, case 34, README, "The relay").
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-headers-test-000000001';
let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
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
  key = await gateway.createUserKey('alice');
  registerSecret(key);
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

describe('towards the upstream', () => {
  it('drops credentials, cookies, hop-by-hop and forwarding headers; sets the pool key and its account', async () => {
    fake.reset();
    // A raw socket: HTTP clients refuse to send some of these (te, keep-alive, connection tokens).
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    const headers = [
      'POST /v1/chat/completions HTTP/1.1',
      'Host: x',
      `Authorization: Bearer ${key}`,
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Cookie: session=abc',
      'OpenAI-Organization: org-client',
      'OpenAI-Project: proj_client',
      'X-Forwarded-For: 10.0.0.1',
      'X-Forwarded-Proto: https',
      'Forwarded: for=10.0.0.1',
      'X-Real-IP: 10.0.0.1',
      'Proxy-Authorization: Basic eDp5',
      'TE: trailers',
      'Keep-Alive: timeout=5',
      'Connection: close, x-drop-me',
      'X-Drop-Me: 1',
      'Api-Key: sk-kr-azure-style-should-not-pass',
      'OpenAI-Beta: assistants=v2',
      'X-Stainless-Lang: js',
      'User-Agent: OpenAI/JS 6.0.0',
      'Accept-Encoding: gzip, br',
    ];
    const answer = await rawRequest(gateway.port, `${headers.join('\r\n')}\r\n\r\n${body}`);
    expect(answer.status).toBe(200);
    expect(fake.requests[0]?.body.toString()).toBe(body);
    const seen = fake.requests[0]?.headers ?? {};
    expect(seen.authorization).toBe(`Bearer ${POOL_KEY}`);
    expect(seen['openai-organization']).toBe('org-pool');
    expect(seen['openai-project']).toBe('proj_pool');
    for (const name of ['cookie', 'x-forwarded-for', 'x-forwarded-proto', 'forwarded', 'x-real-ip', 'proxy-authorization', 'te', 'x-drop-me', 'api-key']) {
      expect(seen[name], name).toBeUndefined();
    }
    expect(seen['openai-beta']).toBe('assistants=v2');
    expect(seen['x-stainless-lang']).toBe('js');
    expect(seen['user-agent']).toBe('OpenAI/JS 6.0.0');
    expect(seen['accept-encoding']).toBe('identity');
  });

  it('a header value with a bare CR never reaches the upstream', async () => {
    fake.reset();
    const answer = await rawRequest(
      gateway.port,
      `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Note: a\rInjected: b\r\nConnection: close\r\n\r\n`,
    );
    expect(answer.status).toBe(400);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('back to the client', () => {
  it('drops cookies, the pool account and its rate limits; keeps the rest', async () => {
    fake.reset();
    fake.handle(() => ({
      status: 200,
      headers: {
        'content-type': 'application/json',
        'set-cookie': ['__cf_bm=abc; path=/', 'other=1'],
        'openai-organization': 'org-pool',
        'openai-project': 'proj_pool',
        'x-ratelimit-remaining-requests': '4',
        'www-authenticate': 'Bearer realm="x"',
        'openai-processing-ms': '12',
        'openai-version': '2020-10-01',
        'x-request-id': 'req_upstream_1',
        'retry-after-ms': '10',
      },
      body: '{"ok":true}',
    }));
    const res = await request(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect(await res.body.text()).toBe('{"ok":true}');
    for (const name of ['set-cookie', 'openai-organization', 'openai-project', 'x-ratelimit-remaining-requests', 'www-authenticate']) {
      expect(res.headers[name], name).toBeUndefined();
    }
    expect(res.headers['openai-processing-ms']).toBe('12');
    expect(res.headers['openai-version']).toBe('2020-10-01');
    expect(res.headers['retry-after-ms']).toBe('10');
    expect(res.headers['x-request-id']).toBe('req_upstream_1');
    expect(res.headers['x-keyrelay-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers['content-length']).toBe('11');
  });

  it('without an upstream request id, x-request-id is the gateway own', async () => {
    fake.reset();
    fake.handle(() => ({ status: 200, headers: { 'content-type': 'application/json', 'x-request-id': '' }, body: '{}' }));
    const res = await request(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    await res.body.text();
    expect(res.headers['x-request-id']).toBe(res.headers['x-keyrelay-request-id']);
  });
});
