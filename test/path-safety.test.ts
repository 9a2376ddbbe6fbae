// Paths are checked once, raw, so that auth and dispatch see the same one and nothing but the
// upstream's /v1 is ever reached (docs/reliability.md, case 33).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { checkTarget } from '../src/relay/path.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-path-test-00000000001';
let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  // Paths below name made-up objects (`resp_1`): shared, they reach the upstream unchanged.
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: `${fake.url}/base/v1` },
    config: { pool: { shareUnknownObjects: true } as Config['pool'] },
  });
  key = await gateway.createUserKey('alice');
  registerSecret(key);
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

function get(target: string, authorization: string) {
  return rawRequest(gateway.port, `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${authorization}\r\nConnection: close\r\n\r\n`);
}

const HOSTILE = [
  '/v1/../admin/users',
  '/v1/./models',
  '/v1/%2e%2e/admin/users',
  '/v1/%2E%2E/admin/users',
  '/v1/.%2e/admin/users',
  '/v1/files%2F..%2F..%2Fadmin',
  '/v1/files%2fx',
  '/v1//models',
  '/v1/models/%00',
  '/v1/models/a%00b',
  '/v1\\..\\admin',
  '/v1/files\\x',
  '/v1/%252e%252e/admin/users',
  '/v1/files/%25',
  '/v1/files/%zz',
  '/v1/files/%5c',
  '/v1/models/',
  '//v1/models',
  '/admin/../v1/models',
  '/admin/%2e%2e/v1/models',
];

describe('hostile paths', () => {
  it.each(HOSTILE)('%s is refused with 400 or 404 and reaches nothing', async (target) => {
    fake.reset();
    for (const token of [key, ADMIN_TOKEN]) {
      const answer = await get(target, token);
      // A path the gateway refuses to read is 400 invalid_path; one it reads and knows nothing of,
      // 404 unknown_url: never the other pairing, never an answer from anywhere else.
      const code = JSON.parse(answer.body).error.code as string;
      expect({ status: answer.status, code }).toEqual(answer.status === 400 ? { status: 400, code: 'invalid_path' } : { status: 404, code: 'unknown_url' });
      expect(answer.headers['content-type']).toBe('application/json');
    }
    expect(fake.requests).toHaveLength(0);
  });

  it('the checker itself refuses each of them', () => {
    for (const target of HOSTILE.filter((t) => !t.startsWith('/admin'))) {
      expect(() => checkTarget(target), target).toThrow();
    }
  });
});

describe('ordinary paths', () => {
  it.each([
    ['/v1/models', '/base/v1/models'],
    ['/v1/models/ft%3Agpt-4o-mini%3Aacme%3A%3Aabc123', '/base/v1/models/ft:gpt-4o-mini:acme::abc123'],
    ['/v1/%6Dodels/gpt-4o', '/base/v1/models/gpt-4o'],
    ['/v1/models/ft:gpt-4o-mini:acme::abc123', '/base/v1/models/ft:gpt-4o-mini:acme::abc123'],
    ['/v1/files?purpose=batch&after=file-1&include[]=a%2Fb', '/base/v1/files?purpose=batch&after=file-1&include[]=a%2Fb'],
    ['/v1/responses/resp_1?beta=true', '/base/v1/responses/resp_1?beta=true'],
    ['/v1/edits', '/base/v1/edits'],
  ])('%s goes to %s, in its canonical form', async (target, upstreamUrl) => {
    fake.reset();
    // Under /base the fake knows no route of its own (it would answer 404): any answer will do.
    fake.handle(() => ({ body: { object: 'list', data: [] } }));
    const answer = await get(target, key);
    expect(answer.status).toBe(200);
    expect(fake.requests.map((r) => r.url)).toEqual([upstreamUrl]);
  });
});
