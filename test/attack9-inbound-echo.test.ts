// Refusals of the paths Fastify answers (admin, console, home) and of the raw parser, each fed a
// secret where a header value would be quoted back: none may echo it, all are OpenAI-shaped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

const SECRET = 'sk-kr-attack9echo0123456789abcdefSECRET';
let gateway: TestGateway;

beforeAll(async () => {
  registerSecret(SECRET);
  gateway = await startGateway({ env: { OPENAI_API_KEYS: 'sk-pool-attack9-echo-0000000001', KEYRELAY_UPSTREAM_URL: 'http://127.0.0.1:9/v1' } });
});
afterAll(async () => {
  await gateway.close();
});

const CASES: Array<[string, string]> = [
  ['a media type', `POST /admin/users HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${SECRET}\r\ncontent-type: application/${SECRET}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`],
  ['a charset', `POST /admin/users HTTP/1.1\r\nhost: x\r\nauthorization: Bearer test-admin-token-0123456789\r\ncontent-type: application/json; charset=${SECRET}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`],
  ['a content-length', `POST /admin/users HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${SECRET}\r\nconnection: close\r\n\r\n{}`],
  ['a header name', `GET /admin/users HTTP/1.1\r\nhost: x\r\n${SECRET}\r\nconnection: close\r\n\r\n`],
  ['a method', `${SECRET} /admin/users HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`],
  ['a target', `GET /admin/${SECRET}%zz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`],
  ['a v1 target', `GET /v1/models/${SECRET}%2f HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${SECRET}\r\nconnection: close\r\n\r\n`],
  ['an Expect', `POST /admin/users HTTP/1.1\r\nhost: x\r\nexpect: ${SECRET}\r\ncontent-length: 2\r\n\r\n{}`],
  ['a transfer coding', `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: ${SECRET}\r\nconnection: close\r\n\r\n`],
  ['an origin', `OPTIONS /v1/chat/completions HTTP/1.1\r\nhost: x\r\norigin: https://${SECRET}.example\r\naccess-control-request-method: POST\r\naccess-control-request-headers: ${SECRET}\r\nconnection: close\r\n\r\n`],
];

describe('a transfer coding other than chunked last', () => {
  it.each(['gzip', 'sk-kr-foo', 'chunked, gzip', 'identity'])('%s: an OpenAI-shaped 400, then the connection closes', async (coding) => {
    for (const path of ['/v1/chat/completions', '/admin/users']) {
      const answer = await rawRequest(gateway.port, `POST ${path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: ${coding}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
      expect(answer.status, path).toBe(400);
      expect(answer.headers['content-type']).toBe('application/json');
      expect(JSON.parse(answer.body).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request' });
      expect(answer.closed).toBe(true);
    }
  });
});

describe('no refusal quotes a secret back', () => {
  it.each(CASES)('%s', async (_name, bytes) => {
    const answer = await rawRequest(gateway.port, bytes);
    expect(answer.raw).not.toContain(SECRET);
    expect(answer.status).toBeGreaterThanOrEqual(200);
    if (answer.status >= 400) {
      expect(answer.headers['content-type']).toBe('application/json');
      const body = JSON.parse(answer.body);
      expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    }
  });
});

describe('the kept request log', () => {
  it('masks a key written in a path that matched no operation, as the access line does', async () => {
    const answer = await rawRequest(gateway.port, `GET /v1/nothing/${SECRET} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    expect(answer.status).toBeGreaterThanOrEqual(400);
    const page = await gateway.admin('GET', '/requests?limit=50');
    expect(page.status).toBe(200);
    const routes: string[] = page.json.data.map((r: { route: string }) => r.route).filter((r: string) => r.startsWith('/v1/nothing/'));
    expect(routes).toHaveLength(1);
    expect(routes[0]).not.toContain(SECRET);
    expect(routes[0]).toMatch(/^\/v1\/nothing\/sk-\*+CRET$/);
  });
});
