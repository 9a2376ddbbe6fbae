// A JSON body past the 1 MB parse threshold is read by the one pass of src/relay/json-shape.ts,
// which leaves strings' contents unchecked, then json-digest.ts parses each top-level setting it
// reads (model, user, …) with JSON.parse on its own bytes. A setting whose string holds an escape
// JSON does not have (`\x`) or a raw control character makes that JSON.parse throw a SyntaxError
// the gateway does not turn into its own error: the client gets 500 for a malformed body, where
// the same body under 1 MB gets 400 invalid_json.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-attack2-escapes-000001';
let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  key = await gateway.createUserKey('mallory', { limits: { tpm: 100_000_000 } });
  registerSecret(key);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});

async function chat(body: string) {
  const res = await fetch(`${gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body,
  });
  return { status: res.status, json: (await res.json()) as { error?: { code?: string } } };
}

// Padding that takes the body past 1 MB.
const PAD = `"${'a'.repeat(1024 * 1024)}"`;
function body(field: string, raw: string, pad: boolean): string {
  const model = field === 'model' ? '' : '"model":"gpt-4o-mini",';
  return `{${model}"messages":[{"role":"user","content":${pad ? PAD : '"hi"'}}],"${field}":${raw}}`;
}

for (const [field, raw] of [
  ['model', '"gpt-4o\\x"'],
  ['user', '"bad \\q escape"'],
  ['user', '"a raw\ttab"'],
] as const) {
  it(`\`${field}\`: ${raw} is refused with the same 400 below and past 1 MB`, async () => {
    const small = await chat(body(field, raw, false));
    const large = await chat(body(field, raw, true));
    expect(small.status).toBe(400);
    expect({ status: large.status, code: large.json.error?.code }).toEqual({ status: 400, code: small.json.error?.code });
  });
}
