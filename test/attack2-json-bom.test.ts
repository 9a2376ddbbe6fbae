// A small JSON body that starts with a UTF-8 byte order mark skips the shape check: the one pass
// (json-shape.ts checkJsonShape) stops at the BOM as "not JSON" and throws nothing, then
// secure-json-parse strips the BOM and parses the rest. So a key given twice and nesting past 64
// levels, both refused without the BOM, are accepted with it.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-attack2-bom-0000001';
const BOM = '\uFEFF';
const MESSAGES = '[{"role":"user","content":"Hi"}]';

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
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

it('"model" twice behind a BOM is refused as it is without one (the allowed model last, a first-wins upstream runs the other)', async () => {
  fake.reset();
  const body = `{"model":"gpt-4o","model":"gpt-4o-mini","messages":${MESSAGES}}`;
  expect((await chat(body)).status).toBe(400);
  const answer = await chat(BOM + body);
  expect(fake.requests).toHaveLength(0);
  expect(answer.status).toBe(400);
});

it('nesting past 64 levels behind a BOM is a 400, not a stack overflow', async () => {
  fake.reset();
  const depth = 200_000;
  const body = `{"model":"gpt-4o-mini","messages":${MESSAGES},"tools":${'['.repeat(depth)}${']'.repeat(depth)}}`;
  const answer = await chat(BOM + body);
  expect(answer.status).toBe(400);
  expect(fake.requests).toHaveLength(0);
});
