// Case 1 (docs/reliability.md): a missing, malformed, oversized, CRLF-bearing or duplicated
// Authorization is a 401 (or, where the header is not valid HTTP, the gateway's own 400), with no
// upstream call, nothing charged to anyone, and the token never echoed. auth.test.ts checks the
// answers' bodies; this file checks the ledger and the usage report around them.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-case-01-auth-000001';
let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerPoolKey(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  key = await gateway.createUserKey('alice', { limits: { rpm: 100, tokensPerDay: 100_000 } });
  registerSecret(key);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});

/** Everything a charge could show: alice's ledger and the usage report of every user. */
async function ledger() {
  const user = await gateway.admin('GET', '/users/alice');
  const report = await gateway.admin('GET', '/usage?groupBy=user');
  const { minute, ...windows } = user.json.usage;
  return { windows, rpmRemaining: minute.requests.remaining, report: report.json };
}

const BODY = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });

function raw(authorization: string): string {
  return `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${authorization}Content-Type: application/json\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n${BODY}`;
}

describe('case 1: a bad Authorization costs nothing', () => {
  it('missing, malformed, oversized, percent-encoded CRLF and duplicated headers: 401, no upstream call, nothing charged', async () => {
    const before = await ledger();
    fake.reset();
    const headerSets: Array<Record<string, string>> = [
      {},
      { authorization: 'Basic YTpi' },
      { authorization: 'Bearer ' },
      { authorization: `Bearer ${key.slice(0, -1)}` },
      { authorization: `Bearer ${key}x` },
      { authorization: `Bearer sk-kr-${'a'.repeat(16 * 1024)}` },
      // A CRLF that survives HTTP parsing, escaped: it reaches the gateway's own key check.
      { authorization: `Bearer ${key}%0D%0AX-Injected:%201` },
    ];
    for (const headers of headerSets) {
      const res = await request(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: BODY,
      });
      const text = await res.body.text();
      expect(res.statusCode).toBe(401);
      expect(JSON.parse(text).error.code).toBe('invalid_api_key');
      expect(text).not.toContain(key);
      expect(text).not.toContain('aaaaaaaaaaaaaaaa');
    }
    const duplicated = await rawRequest(gateway.port, raw(`Authorization: Bearer ${key}\r\nAuthorization: Bearer ${key}\r\n`));
    expect(duplicated.status).toBe(401);
    expect(JSON.parse(duplicated.body).error.code).toBe('invalid_api_key');
    expect(duplicated.raw).not.toContain(key);

    expect(fake.requests).toHaveLength(0);
    expect(await ledger()).toEqual(before);
  });

  it('a raw CR or LF in the value: the gateway answers 400 invalid_request itself, closes, charges nothing', async () => {
    const before = await ledger();
    fake.reset();
    for (const bad of [`Authorization: Bearer ${key}\rX-Injected: 1\r\n`, `Authorization: Bearer ${key}\nX-Injected: 1\r\n`]) {
      const answer = await rawRequest(gateway.port, raw(bad));
      // Not Node's bare "400 Bad Request": the gateway's OpenAI-shaped answer with its request id.
      expect(answer.status).toBe(400);
      expect(answer.headers['content-type']).toBe('application/json');
      expect(answer.headers['x-request-id']).toBeTruthy();
      expect(JSON.parse(answer.body).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request' });
      expect(answer.raw).not.toContain(key);
      expect(answer.closed).toBe(true);
    }
    expect(fake.requests).toHaveLength(0);
    expect(await ledger()).toEqual(before);
  });

  it('the same key, well formed, is charged: the ledger above can move', async () => {
    const before = await ledger();
    const res = await request(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: BODY,
    });
    await res.body.text();
    expect(res.statusCode).toBe(200);
    const after = await ledger();
    expect(after.windows.day.requests).toBe(before.windows.day.requests + 1);
    expect(after.rpmRemaining).toBeLessThan(before.rpmRemaining);
  });
});
