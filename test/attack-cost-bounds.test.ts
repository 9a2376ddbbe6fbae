// Hostile review: a user with a model list gets a model outside it run upstream, because the model
// the gateway checks is not the one the upstream reads. Each request here names `gpt-image-1`
// (outside the list) where the upstream would read it; the gateway must refuse it before relaying.
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { startFake, startQuotaGateway, userWithKey } from './helpers/quota-fixture.js';

// The operations' defaults are in the list: a request naming no model may run.
const MODELS = ['gpt-image-1.5', 'dall-e-2', 'omni-moderation-latest', 'sora-2'];

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

const BOUNDARY = 'kr-attack';
const field = (name: string, value: string, disposition = `form-data; name="${name}"`) =>
  `--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n\r\n${value}\r\n`;
const file = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG....\r\n`;
const end = `--${BOUNDARY}--\r\n`;

async function send(path: string, body: string, contentType: string | undefined): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (contentType !== undefined) headers['content-type'] = contentType;
  const res = await request(`${gateway.baseUrl}${path}`, { method: 'POST', headers, body });
  return { status: res.statusCode, text: await res.body.text() };
}

const form = (body: string) => send('/images/edits', body, `multipart/form-data; boundary=${BOUNDARY}`);

async function expectRefusedUnsent(answer: { status: number; text: string }): Promise<void> {
  expect(answer.status, answer.text).toBeGreaterThanOrEqual(400);
  expect(answer.status, answer.text).toBeLessThan(500);
  expect(fake.requests.filter((r) => r.path !== '/v1/models')).toHaveLength(0);
}

it('an image edit whose model comes after the file is not run as the default model', async () => {
  // The gateway reads only the fields before the first file, finds none, and assumes gpt-image-1.5.
  await expectRefusedUnsent(await form(file + field('prompt', 'a hat') + field('model', 'gpt-image-1') + end));
});

it('a video whose model comes after its input_reference is not run as sora-2', async () => {
  const video = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="input_reference"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG....\r\n`;
  await expectRefusedUnsent(
    await send('/videos', field('prompt', 'a wave') + video + field('model', 'sora-2-pro') + end, `multipart/form-data; boundary=${BOUNDARY}`),
  );
});

it('a form that gives `model` twice before the file is refused, as a JSON body with `model` twice is', async () => {
  // The gateway takes the first; a parser that keeps the last runs gpt-image-1.
  await expectRefusedUnsent(await form(field('model', 'gpt-image-1.5') + field('model', 'gpt-image-1') + file + end));
});

it('a form field named without quotes (`name=model`) is read as the model', async () => {
  // RFC 7578 parsers (python-multipart, busboy) take a token parameter value; the gateway's scan
  // only reads `name="..."`, skips the field and assumes the default.
  await expectRefusedUnsent(await form(field('model', 'gpt-image-1', 'form-data; name=model') + file + end));
});

it('a JSON image request sent without a Content-Type is not run as the default dall-e-2', async () => {
  // No content type passes the body-type check, so the body streams unread and the default is assumed.
  await expectRefusedUnsent(await send('/images/generations', JSON.stringify({ model: 'gpt-image-1', prompt: 'a cat' }), undefined));
});

it('a chat completion sent without a Content-Type is admitted against its worst case, as JSON is', async () => {
  // 1000 tokens a day; the request may produce 100,000. As JSON it is refused before relaying; with
  // no Content-Type the body streams unread, its worst case counts as 0 and it is admitted.
  const small = await userWithKey(gateway, 'small-day', { tokensPerDay: 1000 });
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'write a long story' }], max_tokens: 100_000 });
  const asJson = await request(`${gateway.baseUrl}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${small}`, 'content-type': 'application/json' }, body });
  await asJson.body.text();
  expect(asJson.statusCode).toBe(429);

  const res = await request(`${gateway.baseUrl}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${small}` }, body });
  const answer = { status: res.statusCode, text: await res.body.text() };
  await expectRefusedUnsent(answer);
});
