// A request with an `Expect` the gateway does not meet (anything but 100-continue) gets a 417 with
// an OpenAI-shaped body, as every error of the gateway does, and never reaches the upstream.
// Found by fuzzing request headers (test/fuzz-headers.test.ts): Node's own 417 had an empty body.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { rawRequest } from './helpers/raw-socket.js';

let fx: RelayFixture;

beforeAll(async () => {
  fx = await startRelay('sk-pool-expect-header-0123456789');
});

afterAll(async () => {
  await fx.close();
});

const CHAT = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });

describe('Expect', () => {
  it.each(['Bearer ', '200-ok', 'nonsense'])('%j: 417 invalid_header, OpenAI-shaped, nothing upstream', async (value) => {
    fx.fake.reset();
    const answer = await rawRequest(
      fx.gateway.port,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${fx.userKey}\r\nContent-Type: application/json\r\n` +
        `Expect: ${value}\r\nContent-Length: ${CHAT.length}\r\n\r\n${CHAT}`,
    );
    expect(answer.status).toBe(417);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.headers['x-keyrelay-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(answer.body)).toEqual({
      error: { message: 'The Expect header is not supported, except for Expect: 100-continue.', type: 'invalid_request_error', param: null, code: 'invalid_header' },
    });
    expect(answer.closed).toBe(true);
    expect(fx.fake.requests).toEqual([]);
  });

  it('100-continue is met as before: the request is relayed', async () => {
    fx.fake.reset();
    const answer = await rawRequest(
      fx.gateway.port,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${fx.userKey}\r\nContent-Type: application/json\r\n` +
        `Expect: 100-continue\r\nConnection: close\r\nContent-Length: ${CHAT.length}\r\n\r\n${CHAT}`,
    );
    expect(answer.raw.startsWith('HTTP/1.1 100 Continue\r\n')).toBe(true);
    expect(answer.raw).toContain('HTTP/1.1 200 OK');
    expect(fx.fake.requests).toHaveLength(1);
  });
});
