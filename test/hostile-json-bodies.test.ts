// A JSON body the gateway cannot read the way the upstream will is refused before it is read:
// nesting deeper than 64 levels (it crashed the estimator with a stack overflow, a 500), and a
// key given twice in one object (JSON.parse keeps the last, other parsers the first, so the model
// or token cap the gateway checks might not be the one the upstream uses).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-hostile-json-00000001';
const MESSAGES = '[{"role":"user","content":"Hi"}]';

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  // A token limit: the gateway counts the prompt before admitting the request.
  key = await gateway.createUserKey('mallory', { models: ['gpt-4o-mini'], limits: { tpm: 1_000_000 } });
  registerSecret(key);
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

async function chat(body: string) {
  const res = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body,
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/** `tools` as arrays nested so that the body is `depth` levels deep (the body itself is one). */
const nested = (depth: number) => `{"model":"gpt-4o-mini","messages":${MESSAGES},"tools":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;

const refusal = (message: string, param: string | null) => ({
  status: 400,
  json: { error: { message, type: 'invalid_request_error', param, code: 'invalid_request' } },
});
// `param` is the top-level field the nesting is in, where the client should look.
const tooDeep = (param: string) => refusal('The request body nests arrays and objects deeper than 64 levels.', param);
const twice = (key: string, param = key) =>
  refusal(`The request body gives the key "${key}" twice in one object; JSON parsers disagree on which one counts.`, param);

describe('nesting', () => {
  it('200,000 levels deep is a 400, not a crash, and never reaches the upstream', async () => {
    fake.reset();
    expect(await chat(nested(200_000))).toEqual(tooDeep('tools'));
    expect(fake.requests).toHaveLength(0);
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  });

  it('64 levels are relayed; 65 are not', async () => {
    fake.reset();
    expect((await chat(nested(64))).status).toBe(200);
    expect(await chat(nested(65))).toEqual(tooDeep('tools'));
    expect(fake.requests).toHaveLength(1);
  });

  it('is bounded on every route that takes JSON, metered or not', async () => {
    fake.reset();
    const res = await fetch(`${gateway.url}/v1/vector_stores`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: `{"metadata":${'{"a":'.repeat(100)}1${'}'.repeat(100)}}`,
    });
    expect({ status: res.status, json: await res.json() }).toEqual(tooDeep('metadata'));
    expect(fake.requests).toHaveLength(0);
  });
});

describe('a key given twice', () => {
  it('"model" twice is refused: the gateway read the allowed one, a first-wins upstream would run the other', async () => {
    fake.reset();
    expect(await chat(`{"model":"gpt-4o","messages":${MESSAGES},"model":"gpt-4o-mini"}`)).toEqual(twice('model'));
    expect(fake.requests).toHaveLength(0);
  });

  it('spelled with an escape, it is the same key', async () => {
    fake.reset();
    expect(await chat(`{"mod\\u0065l":"gpt-4o","messages":${MESSAGES},"model":"gpt-4o-mini"}`)).toEqual(twice('model'));
    expect(fake.requests).toHaveLength(0);
  });

  it('a token cap twice is refused: the reservation would be for the smaller', async () => {
    fake.reset();
    expect(await chat(`{"max_tokens":1000000,"model":"gpt-4o-mini","messages":${MESSAGES},"max_tokens":1}`)).toEqual(twice('max_tokens'));
    expect(fake.requests).toHaveLength(0);
  });

  it('inside a nested object too, named by its top-level field', async () => {
    fake.reset();
    const body = `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true,"include_usage":false},"messages":${MESSAGES}}`;
    expect(await chat(body)).toEqual(twice('include_usage', 'stream_options'));
    expect(await chat(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi","role":"system"}]}`)).toEqual(twice('role', 'messages'));
    expect(fake.requests).toHaveLength(0);
  });

  it('the same key in different objects is ordinary JSON and is relayed', async () => {
    fake.reset();
    const body = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief"},{"role":"user","content":"\\"model\\": 1, \\"model\\": 2"}]}`;
    expect((await chat(body)).status).toBe(200);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]?.body.toString('utf8')).toBe(body);
  });
});
