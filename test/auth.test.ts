// Gateway key authentication and the admin boundary: docs/reliability.md, cases 1, 2, 3 and 5.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-auth-test-000000000001';
const UNAUTHORIZED = {
  error: {
    message: 'Incorrect API key provided. Use a key issued by this keyrelay gateway.',
    type: 'invalid_request_error',
    param: null,
    code: 'invalid_api_key',
  },
};

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  registerSecret(ADMIN_TOKEN);
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  key = await gateway.createUserKey('alice');
  registerSecret(key);
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

async function models(headers: Record<string, string | string[]>) {
  const res = await request(`${gateway.url}/v1/models`, { headers });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

describe('a valid key', () => {
  it('reaches the upstream with the pool key in place of its own', async () => {
    fake.reset();
    const res = await models({ authorization: `Bearer ${key}` });
    expect(res.status).toBe(200);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]?.headers.authorization).toBe(`Bearer ${POOL_KEY}`);
  });
});

describe('case 1: missing or malformed Authorization', () => {
  const cases: Array<[string, Record<string, string | string[]>]> = [
    ['not Bearer', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }],
    ['Bearer without a token', { authorization: 'Bearer ' }],
    ['lower-case scheme and two spaces', { authorization: 'bearer  sk-kr-abc' }],
    ['a pool-style key', { authorization: `Bearer ${POOL_KEY}` }],
    ['oversized (16 KB)', { authorization: `Bearer sk-kr-${'a'.repeat(16 * 1024)}` }],
  ];
  it.each(cases)('%s: 401, no upstream call, token not echoed', async (_name, headers) => {
    fake.reset();
    const res = await models(headers);
    expect(res.status).toBe(401);
    expect(JSON.parse(res.text)).toEqual(UNAUTHORIZED);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-request-id']).toBeTruthy();
    expect(fake.requests).toHaveLength(0);
  });

  it('a duplicated Authorization header is refused even when both are valid', async () => {
    fake.reset();
    const answer = await rawRequest(
      gateway.port,
      `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`,
    );
    expect(answer.status).toBe(401);
    expect(answer.body).not.toContain(key);
    expect(fake.requests).toHaveLength(0);
  });

  it('a CR or LF inside the header value is refused before the app and never forwarded', async () => {
    fake.reset();
    const answer = await rawRequest(
      gateway.port,
      `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\rX-Injected: 1\r\nConnection: close\r\n\r\n`,
    );
    // Node's HTTP parser rejects the request line set outright (400, connection closed).
    expect(answer.status).toBe(400);
    expect(answer.raw).not.toContain(key);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('case 2: unknown, revoked and expired keys look the same', () => {
  it('answers byte-identical bodies', async () => {
    const revokedKey = await gateway.createUserKey('bob');
    registerSecret(revokedKey);
    const list = await gateway.admin('GET', '/users/bob/keys');
    await gateway.admin('DELETE', `/keys/${list.json.data[0].id}`);

    await gateway.admin('POST', '/users?allowPast=true', { id: 'carol', expiresAt: '2020-01-01T00:00:00Z' });
    const expiredUserKey = (await gateway.admin('POST', '/users/carol/keys', {})).json.key as string;
    await gateway.admin('POST', '/users', { id: 'dave' });
    const expiredKey = (await gateway.admin('POST', '/users/dave/keys?allowPast=true', { expiresAt: '2021-06-01T00:00:00Z' })).json.key as string;
    const deletedUserKey = await gateway.createUserKey('erin');
    await gateway.admin('DELETE', '/users/erin');
    for (const k of [expiredUserKey, expiredKey, deletedUserKey]) registerSecret(k);

    fake.reset();
    const unknown = await models({ authorization: `Bearer sk-kr-${'Z'.repeat(40)}` });
    const answers = await Promise.all(
      [revokedKey, expiredUserKey, expiredKey, deletedUserKey].map((k) => models({ authorization: `Bearer ${k}` })),
    );
    for (const answer of answers) {
      expect(answer.status).toBe(401);
      expect(answer.text).toBe(unknown.text);
    }
    expect(fake.requests).toHaveLength(0);
  });

  it('a revocation takes effect on the next request', async () => {
    const k = await gateway.createUserKey('frank');
    registerSecret(k);
    expect((await models({ authorization: `Bearer ${k}` })).status).toBe(200);
    const list = await gateway.admin('GET', '/users/frank/keys');
    const revoked = await gateway.admin('DELETE', `/keys/${list.json.data[0].id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.json.revokedAt).toBeTruthy();
    expect((await models({ authorization: `Bearer ${k}` })).status).toBe(401);
  });
});

describe('case 3: nothing reaches /admin but the admin token on /admin', () => {
  const tricks: Array<[string, string]> = [
    ['Host header', `GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1/admin/users\r\nAuthorization: Bearer KEY\r\nConnection: close\r\n\r\n`],
    ['X-Forwarded-Host and X-Original-URL', `GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: admin\r\nX-Original-URL: /admin/users\r\nX-Rewrite-URL: /admin/users\r\nAuthorization: Bearer KEY\r\nConnection: close\r\n\r\n`],
  ];
  it.each(tricks)('%s changes nothing: the request is relayed as /v1/models', async (_name, raw) => {
    fake.reset();
    const answer = await rawRequest(gateway.port, raw.replace('KEY', key));
    expect(answer.status).toBe(200);
    expect(fake.requests.map((r) => r.path)).toEqual(['/v1/models']);
  });

  it('an absolute-form request target is refused', async () => {
    const answer = await rawRequest(
      gateway.port,
      `GET http://127.0.0.1/admin/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nConnection: close\r\n\r\n`,
    );
    expect(answer.status).toBe(400);
    expect(answer.body).not.toContain('"data"');
  });

  it('a user key never opens /admin', async () => {
    const res = await request(`${gateway.url}/admin/users`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.statusCode).toBe(401);
    expect(await res.body.json()).toEqual({
      error: { message: 'The admin API needs the admin token.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
    });
  });

  it('the admin token is not a user key', async () => {
    fake.reset();
    const res = await models({ authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(res.status).toBe(401);
    expect(fake.requests).toHaveLength(0);
  });

  it('without an admin token configured, /admin answers 404', async () => {
    const closed = await startGateway({ env: { KEYRELAY_ADMIN_TOKEN: undefined, OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
    try {
      const res = await request(`${closed.url}/admin/users`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(res.statusCode).toBe(404);
      expect((await res.body.json()) as object).toMatchObject({ error: { code: 'unknown_url' } });
    } finally {
      await closed.close();
    }
  });
});

describe('case 5: no client-chosen upstream', () => {
  it('body fields and headers naming another upstream change nothing', async () => {
    fake.reset();
    const res = await request(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        'x-upstream-url': 'http://127.0.0.1:1/evil',
        'x-forwarded-host': 'evil.example',
      },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [], api_base: 'http://127.0.0.1:1', base_url: 'http://127.0.0.1:1' }),
    });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]?.path).toBe('/v1/chat/completions');
  });

  it('an upstream redirect is passed back, never followed', async () => {
    fake.reset();
    fake.handle(() => ({ status: 307, headers: { location: 'http://127.0.0.1:1/elsewhere' }, body: '' }));
    const res = await models({ authorization: `Bearer ${key}` });
    expect(res.status).toBe(307);
    expect(res.headers.location).toBe('http://127.0.0.1:1/elsewhere');
    expect(fake.requests).toHaveLength(1);
  });
});
