// What an Azure upstream changes around the relay: routes its classic API has not are refused
// before any upstream call and charged nothing; Azure's 429 (retry-after-ms) cools the key and the
// request goes on to another; Azure's 401 disables the key; a stream reaches the client byte for
// byte; a key test lists the resource's models with api-key.
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { azureError } from '../src/dev/fake-azure.js';
import { API_VERSION, AZURE_KEYS, type AzureFixture, startAzure } from './helpers/azure-fixture.js';
import { post, until, usageOf } from './helpers/quota-fixture.js';

let fx: AzureFixture;
let fxClassic: AzureFixture;
beforeAll(async () => {
  [fx, fxClassic] = await Promise.all([startAzure({ first: 'v1' }), startAzure({ first: 'classic' })]);
});
afterAll(() => Promise.all([fx.close(), fxClassic.close()]));
beforeEach(() => {
  fx.reset();
  fxClassic.reset();
});

async function day(on: AzureFixture, user: string) {
  await until(async () => (await usageOf(on.gateway, user)).concurrent.inFlight === 0, 'the requests to settle');
  return (await usageOf(on.gateway, user)).day;
}

async function poolKey(on: AzureFixture, upstream: string, key: string) {
  return (await on.gateway.admin('GET', `/upstreams/${upstream}/keys/${key}`)).json;
}

describe('a route the classic API has not', () => {
  it('answers 404 route_not_supported naming the upstream, before any upstream call, at no charge', async () => {
    const key = await fxClassic.user('unsupported');
    // By model: gpt-4o-mini is a deployment of the classic upstream, which has no Responses API.
    const responses = await post(fxClassic.gateway.url, key, '/responses', { model: 'gpt-4o-mini', input: 'Hi' });
    // By no model: the first upstream (the classic one) has no vector stores.
    const stores = await request(`${fxClassic.gateway.baseUrl}/vector_stores`, { headers: { authorization: `Bearer ${key}` } });
    const storesBody = (await stores.body.json()) as { error: unknown };
    for (const [status, body] of [
      [responses.status, responses.json],
      [stores.statusCode, storesBody],
    ] as const) {
      expect(status).toBe(404);
      expect(body).toEqual({
        error: { message: expect.stringContaining('upstream "azure-classic"'), type: 'invalid_request_error', param: null, code: 'route_not_supported' },
      });
    }
    expect(responses.json.error.message).toContain('createResponse');
    expect(fxClassic.classic.requests).toHaveLength(0);
    expect(await day(fxClassic, 'unsupported')).toMatchObject({ requests: 0, tokens: 0, usdMicros: 0 });
  });

  it('keeps the client\'s query and puts the upstream\'s api-version in place of its own', async () => {
    const key = await fxClassic.user('query');
    const answer = await request(`${fxClassic.gateway.baseUrl}/files?purpose=batch&api-version=1999-01-01&limit=2`, { headers: { authorization: `Bearer ${key}` } });
    await answer.body.text();
    expect(fxClassic.classic.requests.map((r) => r.url)).toEqual([`/openai/files?purpose=batch&limit=2&api-version=${API_VERSION}`]);
  });
});

describe('key health at Azure', () => {
  it('a 429 with retry-after-ms cools the key for that long and the request goes on to the other key', async () => {
    const key = await fx.user('limited');
    let limited: string | undefined;
    fx.v1.handle((req) => {
      if (limited !== undefined) return undefined;
      limited = String(req.headers['api-key']);
      return {
        ...azureError(429, '429', `Requests to the ChatCompletions_Create Operation under Azure OpenAI API version ${API_VERSION} have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds.`),
        headers: { 'retry-after-ms': '7000', 'retry-after': '7' },
      };
    });
    const before = Date.now();
    const answer = await post(fx.gateway.url, key, '/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] });
    expect(answer.status).toBe(200);
    const used = fx.v1.requests.map((r) => r.headers['api-key']);
    expect(used).toHaveLength(2);
    expect(new Set(used)).toEqual(new Set(AZURE_KEYS.v1));
    const cooled = used[0] === AZURE_KEYS.v1[0] ? 'az-1' : 'az-2';
    const other = cooled === 'az-1' ? 'az-2' : 'az-1';
    const view = await poolKey(fx, 'azure-v1', cooled);
    expect(view).toMatchObject({ state: 'cooling', reason: 'rate_limited' });
    expect(Date.parse(view.until)).toBeGreaterThanOrEqual(before + 6_000);
    expect(Date.parse(view.until)).toBeLessThanOrEqual(Date.now() + 8_000);
    expect(await poolKey(fx, 'azure-v1', other)).toMatchObject({ state: 'active' });
    // The next requests go to the other key while the first cools.
    fx.reset();
    await post(fx.gateway.url, key, '/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] });
    expect(fx.v1.requests.map((r) => r.headers['api-key'])).toEqual([used[1]]);
    expect(await fx.gateway.admin('POST', `/upstreams/azure-v1/keys/${cooled}/enable`)).toMatchObject({ status: 200 });
  });

  it('Azure\'s 401 disables the key, and the client gets the answer with the key masked', async () => {
    const key = await fxClassic.user('denied');
    fxClassic.classic.handle((req) => azureError(401, '401', `Access denied due to invalid subscription key ${String(req.headers['api-key'])} or wrong API endpoint.`));
    const answer = await post(fxClassic.gateway.url, key, '/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });
    expect(answer.status).toBe(401);
    expect(answer.json.error.code).toBe('401');
    expect(answer.text).not.toContain(AZURE_KEYS.classic[0]);
    expect(await poolKey(fxClassic, 'azure-classic', 'az-c')).toMatchObject({ state: 'disabled', reason: 'invalid_api_key' });
    fxClassic.reset();
    expect((await fxClassic.gateway.admin('POST', '/upstreams/azure-classic/keys/az-c/enable')).status).toBe(200);
  });
});

describe('Azure streams', () => {
  // An Azure stream as the service writes it: the empty first chunk of prompt filter results,
  // filter results on every choice, a chunk of no choices (the late filter pass) before the usage.
  // Written in pieces that cut events (and a UTF-8 character) in two.
  const FILTER = '{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"}}';
  const STREAM = [
    `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":${FILTER}}]}\n\n`,
    `data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1733500000,"id":"chatcmpl-az1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_az","usage":null}\n\n`,
    `data: {"choices":[{"content_filter_results":${FILTER},"delta":{"content":"Grüß"},"finish_reason":null,"index":0,"logprobs":null}],"created":1733500000,"id":"chatcmpl-az1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_az","usage":null}\n\n`,
    `data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}],"created":1733500000,"id":"chatcmpl-az1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_az","usage":null}\n\n`,
    `data: {"choices":[],"created":1733500000,"id":"chatcmpl-az1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_az","usage":null}\n\n`,
    `data: {"choices":[],"created":1733500000,"id":"chatcmpl-az1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_az","usage":{"completion_tokens":3,"prompt_tokens":9,"total_tokens":12}}\n\n`,
    'data: [DONE]\n\n',
  ].join('');
  const bytes = Buffer.from(STREAM);
  const umlaut = bytes.indexOf(Buffer.from('ü')) + 1;
  const pieces = [bytes.subarray(0, 37), bytes.subarray(37, umlaut), bytes.subarray(umlaut, bytes.length - 200), bytes.subarray(bytes.length - 200)];
  const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }], stream: true };

  async function streamed(user: string, extra: Record<string, unknown>): Promise<string> {
    fx.v1.handle(() => ({ headers: { 'content-type': 'text/event-stream' }, chunks: pieces }));
    const answer = await request(`${fx.gateway.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await fx.user(user)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, ...extra }),
    });
    expect(answer.statusCode).toBe(200);
    return answer.body.text();
  }

  it('reach the client byte for byte when the client asked for the usage, and are charged by it', async () => {
    expect(await streamed('raw-stream', { stream_options: { include_usage: true } })).toBe(STREAM);
    expect(await day(fx, 'raw-stream')).toMatchObject({ requests: 1, tokens: 12, usdMicros: 9 + 2 * 3 });
  });

  it('lose only the usage the gateway asked for on the client\'s behalf; every Azure chunk stays', async () => {
    const received = await streamed('asked-stream', {});
    // The usage chunk and the `,"usage":null` the request for usage brought are taken out; the
    // chunk of no choices before the usage, and every filter result, reach the client.
    const expected = STREAM.split('\n\n')
      .filter((event) => !event.includes('"usage":{'))
      .join('\n\n')
      .replaceAll(',"usage":null', '');
    expect(received).toBe(expected);
    expect(await day(fx, 'asked-stream')).toMatchObject({ requests: 1, tokens: 12, usdMicros: 9 + 2 * 3 });
  });
});

describe('key tests at Azure', () => {
  it('the v1 API: GET /openai/v1/models with api-key', async () => {
    const answer = await fx.gateway.admin('POST', '/upstreams/azure-v1/keys/az-1/test');
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ ok: true, status: 200, error: null, key: { id: 'az-1' } });
    expect(answer.json.models).toContain('gpt-4o');
    const [req] = fx.v1.requests;
    expect(req?.url).toBe('/openai/v1/models');
    expect(req?.headers['api-key']).toBe(AZURE_KEYS.v1[0]);
    expect(req?.headers.authorization).toBeUndefined();
  });

  it('the classic API: GET /openai/models?api-version= with api-key; a wrong key fails with Azure\'s words, masked', async () => {
    const answer = await fxClassic.gateway.admin('POST', '/upstreams/azure-classic/keys/az-c/test');
    expect(answer.json).toMatchObject({ ok: true, status: 200, error: null });
    expect(fxClassic.classic.requests.map((r) => r.url)).toEqual([`/openai/models?api-version=${API_VERSION}`]);
    const wrong = await fxClassic.gateway.admin('POST', '/upstreams/azure-classic/test-key', { key: 'az-wrong-key-0123456789' });
    expect(wrong.json).toMatchObject({ ok: false, status: 401, error: { code: '401', message: expect.stringContaining('Access denied') } });
    expect(await poolKey(fxClassic, 'azure-classic', 'az-c')).toMatchObject({ state: 'active' });
  });
});
