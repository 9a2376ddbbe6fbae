// JSON answers are charged the `usage` they report, in each endpoint's shape: chat, completions,
// embeddings, responses, images, and audio transcription (a multipart request).
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';

let fake: FakeUpstream;
let gateway: TestGateway;
let users = 0;

beforeAll(async () => {
  fake = await startFake();
  gateway = await startQuotaGateway(fake);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});
beforeEach(() => fake.reset());

async function charged(id: string): Promise<any> {
  await until(async () => (await usageOf(gateway, id)).concurrent.inFlight === 0, 'the request to settle');
  return (await usageOf(gateway, id)).day;
}

describe('a JSON answer', () => {
  it.each([
    // The fake's usage: ceil(characters / 4) of the prompt, and its fixed answer.
    ['/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 10 }, 1 + FAKE_COMPLETION_TOKENS],
    ['/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'Say hi' }, 2 + FAKE_COMPLETION_TOKENS],
    ['/embeddings', { model: 'text-embedding-3-small', input: 'hello world' }, 3],
    ['/responses', { model: 'gpt-4o-mini', input: 'Hi', max_output_tokens: 10 }, 1 + FAKE_COMPLETION_TOKENS],
  ])('from %s is charged the usage it reports', async (path, body, tokens) => {
    const id = `json-${++users}`;
    const key = await userWithKey(gateway, id, { tokensPerDay: 1_000_000 });
    expect((await post(gateway.url, key, path, body)).status).toBe(200);
    expect(await charged(id)).toMatchObject({ requests: 1, tokens, reservedTokens: 0, estimatedRequests: 0 });
  });

  it('from /images/generations is charged its input and output tokens', async () => {
    const key = await userWithKey(gateway, 'images', { tokensPerDay: 1_000_000 });
    const usage = { input_tokens: 12, output_tokens: 4160, total_tokens: 4172, input_tokens_details: { text_tokens: 12, image_tokens: 0 } };
    fake.handle(() => ({ body: { created: 1, data: [{ b64_json: 'aGVsbG8=' }], usage } }));
    expect((await post(gateway.url, key, '/images/generations', { model: 'gpt-image-1', prompt: 'a lighthouse at dusk', n: 1 })).status).toBe(200);
    // gpt-image-1: $5 input, $40 output per million tokens.
    expect(await charged('images')).toMatchObject({ tokens: 4172, usdMicros: Math.ceil((12 * 5_000_000 + 4160 * 40_000_000) / 1e6) });
  });

  it('from /audio/transcriptions (multipart) is charged its tokens', async () => {
    const key = await userWithKey(gateway, 'audio', { tokensPerDay: 1_000_000 });
    fake.handle(() => ({ body: { text: 'hello', usage: { type: 'tokens', input_tokens: 30, output_tokens: 8, total_tokens: 38 } } }));
    const boundary = 'kr-boundary';
    const form =
      `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o-transcribe\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF....\r\n--${boundary}--\r\n`;
    const res = await request(`${gateway.baseUrl}/audio/transcriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: form,
    });
    await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(await charged('audio')).toMatchObject({ requests: 1, tokens: 38 });
  });
});
