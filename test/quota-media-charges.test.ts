// Audio and image calls through the gateway with the official SDK: each is charged exactly as
// priced (per minute, per token of each kind, per image by size and quality, per character), and
// a user with a dollar limit cannot spend past it with any of them.
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FAKE_AUDIO_BYTES_PER_SECOND, FAKE_AUDIO_TOKENS_PER_SECOND, FAKE_TRANSCRIPT, FAKE_TRANSCRIPT_TOKENS } from '../src/dev/fake-media-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { countText } from '../src/quota/estimate.js';
import type { TestGateway } from './helpers/gateway.js';
import { startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let fake: FakeUpstream;
let gateway: TestGateway;
let memoryGateway: TestGateway;
let redis: RedisServer;
let redisGateway: TestGateway;
let users = 0;

beforeAll(async () => {
  fake = await startFake();
  redis = await startRedis();
  memoryGateway = await startQuotaGateway(fake);
  redisGateway = await startQuotaGateway(fake, redis.url);
  gateway = memoryGateway;
});
afterAll(async () => {
  await memoryGateway.close();
  await redisGateway.close();
  await redis.stop();
  await fake.close();
});
beforeEach(() => fake.reset());

async function client(limits: Record<string, number> = { usdPerDay: 5 }): Promise<{ sdk: OpenAI; id: string }> {
  const id = `media-${++users}`;
  const key = await userWithKey(gateway, id, limits);
  return { id, sdk: new OpenAI({ apiKey: key, baseURL: `${gateway.url}/v1`, maxRetries: 0 }) };
}

async function charged(id: string): Promise<Record<string, number>> {
  await until(async () => (await usageOf(gateway, id)).concurrent.inFlight === 0, 'the request to settle');
  return (await usageOf(gateway, id)).day;
}

/** The seconds the fake hears in the one upload it was sent. */
function fakeSeconds(): number {
  const length = fake.requests[0]?.body.length ?? 0;
  return Math.round((length / FAKE_AUDIO_BYTES_PER_SECOND) * 100) / 100;
}

const audio = (seconds: number) => toFile(Buffer.alloc(seconds * FAKE_AUDIO_BYTES_PER_SECOND, 7), 'speech.wav', { type: 'audio/wav' });
const png = () => toFile(Buffer.alloc(4096, 3), 'cat.png', { type: 'image/png' });

describe('transcriptions and translations', () => {
  it('whisper-1, verbose_json with timestamps: charged $0.006 a minute of the duration the answer gives', async () => {
    const { sdk, id } = await client();
    const answer = await sdk.audio.transcriptions.create({
      model: 'whisper-1',
      response_format: 'verbose_json',
      timestamp_granularities: ['segment'],
      file: await audio(30),
    });
    expect(answer.text).toBe(FAKE_TRANSCRIPT);
    // No usage in this answer: its `duration` (rounded up to a second) at 100 micro-dollars a second.
    expect(answer.duration).toBe(fakeSeconds());
    expect(await charged(id)).toMatchObject({ requests: 1, usdMicros: Math.ceil(fakeSeconds()) * 100, tokens: 0, reservedUsdMicros: 0, estimatedRequests: 0 });
  });

  it('whisper-1 as plain text (no usage, no duration): charged the worst case of its file', async () => {
    const { sdk, id } = await client();
    await sdk.audio.transcriptions.create({ model: 'whisper-1', response_format: 'text', file: await audio(2) });
    const bytes = Number(fake.requests[0]?.headers['content-length']);
    // The longest the file can play: its bytes at 750 a second (6 kbit/s).
    expect(await charged(id)).toMatchObject({ requests: 1, usdMicros: Math.ceil(bytes / 750) * 100, estimatedRequests: 1 });
  });

  it('gpt-4o-transcribe: charged its audio tokens at $6 and its text at $10 a million', async () => {
    const { sdk, id } = await client();
    const answer = await sdk.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await audio(20) });
    expect(answer.text).toBe(FAKE_TRANSCRIPT);
    const audioTokens = Math.ceil(fakeSeconds() * FAKE_AUDIO_TOKENS_PER_SECOND);
    expect(await charged(id)).toMatchObject({
      tokens: audioTokens + FAKE_TRANSCRIPT_TOKENS,
      usdMicros: Math.ceil((audioTokens * 6_000_000 + FAKE_TRANSCRIPT_TOKENS * 10_000_000) / 1e6),
    });
  });

  it('gpt-4o-mini-transcribe streamed: charged the usage of transcript.text.done', async () => {
    const { sdk, id } = await client();
    const stream = await sdk.audio.transcriptions.create({ model: 'gpt-4o-mini-transcribe', stream: true, file: await audio(10) });
    let text = '';
    for await (const event of stream) if (event.type === 'transcript.text.delta') text += event.delta;
    expect(text).toBe(FAKE_TRANSCRIPT);
    const audioTokens = Math.ceil(fakeSeconds() * FAKE_AUDIO_TOKENS_PER_SECOND);
    expect(await charged(id)).toMatchObject({ usdMicros: Math.ceil((audioTokens * 3_000_000 + FAKE_TRANSCRIPT_TOKENS * 5_000_000) / 1e6) });
  });

  it('a whisper-1 translation: charged by the seconds of its usage', async () => {
    const { sdk, id } = await client();
    await sdk.audio.translations.create({ model: 'whisper-1', file: await audio(45) });
    expect(await charged(id)).toMatchObject({ usdMicros: Math.ceil(fakeSeconds()) * 100 });
  });
});

describe('images', () => {
  it.each([
    ['standard', '1024x1024', 40_000],
    ['hd', '1792x1024', 120_000],
  ] as const)('dall-e-3 %s %s: charged per image at its size and quality', async (quality, size, micros) => {
    const { sdk, id } = await client();
    const answer = await sdk.images.generate({ model: 'dall-e-3', prompt: 'a lighthouse at dusk', quality, size });
    expect(answer.data).toHaveLength(1);
    expect(await charged(id)).toMatchObject({ requests: 1, usdMicros: micros });
  });

  it('a dall-e-2 edit with n: 2 at 512x512: charged for the two images the answer holds', async () => {
    const { sdk, id } = await client();
    const answer = await sdk.images.edit({ model: 'dall-e-2', n: 2, size: '512x512', prompt: 'add a hat', image: await png() });
    expect(answer.data).toHaveLength(2);
    expect(await charged(id)).toMatchObject({ usdMicros: 2 * 18_000 });
  });

  it('a gpt-image-1 edit with n: 2: charged its text, image input and image output tokens', async () => {
    const { sdk, id } = await client();
    const prompt = 'add a small red hat';
    const answer = await sdk.images.edit({ model: 'gpt-image-1', n: 2, quality: 'low', prompt, image: await png() });
    const usage = answer.usage as NonNullable<typeof answer.usage>;
    expect(answer.data).toHaveLength(2);
    const text = usage.input_tokens_details.text_tokens;
    const image = usage.input_tokens_details.image_tokens;
    expect(await charged(id)).toMatchObject({ usdMicros: Math.ceil((text * 5_000_000 + image * 10_000_000 + usage.output_tokens * 40_000_000) / 1e6) });
  });

  it('a dall-e-2 variation with its size after the file: charged at the dearest size', async () => {
    const { sdk, id } = await client();
    await sdk.images.createVariation({ model: 'dall-e-2', image: await png(), n: 1, size: '256x256' });
    expect(await charged(id)).toMatchObject({ usdMicros: 20_000 });
  });
});

describe('speech', () => {
  it.each([
    ['tts-1', 15],
    ['tts-1-hd', 30],
  ] as const)('%s: charged per character of its input', async (model, microsPerChar) => {
    const { sdk, id } = await client();
    const input = 'The gateway charges each character once.';
    const answer = await sdk.audio.speech.create({ model, voice: 'alloy', input });
    expect((await answer.arrayBuffer()).byteLength).toBeGreaterThan(0);
    expect(await charged(id)).toMatchObject({ usdMicros: input.length * microsPerChar });
  });

  it('gpt-4o-mini-tts as audio bytes (no usage): charged its text and 10 audio tokens a character, estimated', async () => {
    const { sdk, id } = await client();
    const input = 'Twelve chars';
    await (await sdk.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input })).arrayBuffer();
    const text = countText(input);
    expect(await charged(id)).toMatchObject({
      tokens: text + input.length * 10,
      usdMicros: Math.ceil((text * 600_000 + input.length * 10 * 12_000_000) / 1e6),
      estimatedRequests: 1,
    });
  });

  it('gpt-4o-mini-tts streamed as SSE: charged the usage of speech.audio.done', async () => {
    const { sdk, id } = await client();
    const input = 'Twelve chars';
    const answer = await sdk.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input, stream_format: 'sse' });
    await answer.text();
    // The fake: ceil(chars / 4) text tokens in, 2 audio tokens a character out, $0.60 and $12 a million.
    expect(await charged(id)).toMatchObject({ usdMicros: Math.ceil((3 * 600_000 + 24 * 12_000_000) / 1e6) });
  });
});

describe.each([
  ['memory', () => memoryGateway],
  ['redis', () => redisGateway],
])('a user with a dollar limit (%s store)', (_store, which) => {
  beforeEach(() => {
    gateway = which();
    return () => {
      gateway = memoryGateway;
    };
  });

  it('gets exactly as many images as the limit pays for: the next is refused before the upstream', async () => {
    const { sdk, id } = await client({ usdPerDay: 0.1 });
    await sdk.images.generate({ model: 'dall-e-3', prompt: 'one', size: '1024x1024' });
    await sdk.images.generate({ model: 'dall-e-3', prompt: 'two', size: '1024x1024' });
    await expect(sdk.images.generate({ model: 'dall-e-3', prompt: 'three', size: '1024x1024' })).rejects.toMatchObject({ status: 429, code: 'insufficient_quota' });
    expect(fake.requests).toHaveLength(2);
    expect(await charged(id)).toMatchObject({ usdMicros: 80_000 });
  });

  it('cannot spend past it with any audio or image call whose worst case does not fit', async () => {
    const { sdk, id } = await client({ usdPerDay: 0.01 });
    const refused = { status: 429, code: 'insufficient_quota' };
    // 4,000 characters of tts-1: $0.06.
    await expect(sdk.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'x'.repeat(4000) })).rejects.toMatchObject(refused);
    // One hd image at 1792x1024: $0.12.
    await expect(sdk.images.generate({ model: 'dall-e-3', prompt: 'p', quality: 'hd', size: '1792x1024' })).rejects.toMatchObject(refused);
    // `n` after the file: taken at 10 images ($0.20), whatever it says.
    await expect(sdk.images.edit({ model: 'dall-e-2', prompt: 'p', image: await png(), n: 1 })).rejects.toMatchObject(refused);
    // A megabyte of audio may play 1,398 s: $0.14 with whisper-1, 16,000 audio tokens ($0.096) and 2,000 out with gpt-4o-transcribe.
    const big = () => toFile(Buffer.alloc(1024 * 1024, 1), 'long.ogg', { type: 'audio/ogg' });
    await expect(sdk.audio.transcriptions.create({ model: 'whisper-1', file: await big() })).rejects.toMatchObject(refused);
    await expect(sdk.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await big() })).rejects.toMatchObject(refused);
    await expect(sdk.audio.translations.create({ model: 'whisper-1', file: await big() })).rejects.toMatchObject(refused);
    expect(fake.requests).toHaveLength(0);
    expect(await charged(id)).toMatchObject({ usdMicros: 0, reservedUsdMicros: 0 });
  });
});
