// A form's `model` part whose name the gateway's reading of Content-Disposition (src/relay/
// form-fields.ts partHead: the first `;\s*name=` in the first Content-Disposition line) takes for
// something else, while a multipart parser upstream takes it for `model`. The gateway then finds
// no model, assumes the operation's default (in the user's list), and relays the form, which runs
// sora-2-pro, outside the list. A video form needs no file (input_reference is optional): with
// none, the gateway has read the whole form, and "no model" means the default sora-2.
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { startFake, startQuotaGateway, userWithKey } from './helpers/quota-fixture.js';

const MODELS = ['sora-2'];
const BOUNDARY = 'kr-attack2';

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  fake = await startFake();
  gateway = await startQuotaGateway(fake);
  key = await userWithKey(gateway, 'listed', { tokensPerDay: 1_000_000 }, { models: MODELS });
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});
beforeEach(() => fake.reset());

const part = (headers: string, value: string) => `--${BOUNDARY}\r\n${headers}\r\n\r\n${value}\r\n`;
const prompt = part('Content-Disposition: form-data; name="prompt"', 'a wave');
const end = `--${BOUNDARY}--\r\n`;

async function video(modelPartHeaders: string): Promise<{ status: number; text: string }> {
  const body = prompt + part(modelPartHeaders, 'sora-2-pro') + end;
  const res = await request(`${gateway.baseUrl}/videos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
    body,
  });
  return { status: res.statusCode, text: await res.body.text() };
}

const cases: Array<[string, string]> = [
  // RFC 2183 parameters: `; name=prompt` inside another parameter's quoted value is not a parameter.
  ['a `; name=` inside another quoted parameter', 'Content-Disposition: form-data; x="; name=prompt"; name="model"'],
  // Two Content-Disposition headers in one part: a parser that keeps the last reads `model`.
  ['a second Content-Disposition header', 'Content-Disposition: form-data; name="prompt2"\r\nContent-Disposition: form-data; name="model"'],
  // RFC 2231 extended parameter, which Python's email parser (and Werkzeug) decode as `name`.
  ["`name*=UTF-8''model`", "Content-Disposition: form-data; name*=UTF-8''model"],
];

it('(control, holds) the same form with a plain `name="model"` is refused', async () => {
  const answer = await video('Content-Disposition: form-data; name="model"');
  expect(answer.status, answer.text).toBe(403);
  expect(fake.requests.filter((r) => r.path === '/v1/videos')).toHaveLength(0);
});

for (const [what, headers] of cases) {
  it(`a model part named with ${what} is read as the model, or the form refused`, async () => {
    const answer = await video(headers);
    expect(answer.status, answer.text).toBeGreaterThanOrEqual(400);
    expect(answer.status, answer.text).toBeLessThan(500);
    expect(fake.requests.filter((r) => r.path === '/v1/videos')).toHaveLength(0);
  });
}
