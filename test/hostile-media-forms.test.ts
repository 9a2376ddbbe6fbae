// Hostile forms and hostile usage on the audio and image routes: a `model` after a 500 MB file or
// none at all, a priced field given twice, and an upstream that reports absurd usage.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { MAX_AMOUNT } from '../src/quota/amounts.js';
import type { TestGateway } from './helpers/gateway.js';
import { startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';

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

const BOUNDARY = 'hostile-form-boundary';
const field = (name: string, value: string) => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
const fileHead = (name: string) => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"; filename="a.ogg"\r\nContent-Type: audio/ogg\r\n\r\n`;
const END = `\r\n--${BOUNDARY}--\r\n`;

async function user(limits: Record<string, number>, extra: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
  const id = `hostile-media-${++users}`;
  return { id, key: await userWithKey(gateway, id, limits, extra) };
}

async function settled(id: string): Promise<any> {
  await until(async () => (await usageOf(gateway, id)).concurrent.inFlight === 0, 'the request to settle');
  return (await usageOf(gateway, id)).day;
}

/**
 * Sends a form of `total` bytes: `head`, then filler, then `tail`, writing only while no answer has
 * come. Resolves with the answer and how many bytes were written before it.
 */
function sendLarge(key: string, path: string, head: string, tail: string, total: number): Promise<{ status: number; body: any; written: number }> {
  const url = new URL(`${gateway.url}/v1${path}`);
  return new Promise((resolve, reject) => {
    let written = 0;
    let answered = false;
    const req = httpRequest(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(total) },
    });
    req.on('error', (err) => (answered ? undefined : reject(err)));
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), written });
      });
    });
    const chunk = Buffer.alloc(1024 * 1024, 0x41);
    const pump = (): void => {
      while (!answered) {
        const left = total - Buffer.byteLength(tail) - written;
        if (written === 0) {
          written += Buffer.byteLength(head);
          if (!req.write(head)) return void req.once('drain', pump);
          continue;
        }
        if (left <= 0) {
          written += Buffer.byteLength(tail);
          req.end(tail);
          return;
        }
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        written += piece.length;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
    };
    pump();
  });
}

describe('a form whose model the gateway cannot read', () => {
  const FIVE_HUNDRED_MB = 500 * 1024 * 1024;

  it.each([
    ['a dollar limit', { usdPerDay: 5 }, {}],
    ['a model list', {}, { models: ['whisper-1'] }],
  ])('after a 500 MB file, for a user with %s: refused at the file, before the upstream gets a byte', async (_what, limits, extra) => {
    const { id, key } = await user(limits, extra);
    const answer = await sendLarge(key, '/audio/transcriptions', fileHead('file'), `${END.slice(0, 2)}${field('model', 'whisper-1')}--${BOUNDARY}--\r\n`, FIVE_HUNDRED_MB);
    expect(answer.status).toBe(403);
    expect(answer.body.error).toMatchObject({ code: 'model_not_allowed', param: 'model' });
    expect(answer.body.error.message).toMatch(/must come before the file/);
    // Decided from the file's part header: far less than the whole file was sent.
    expect(answer.written).toBeLessThan(FIVE_HUNDRED_MB / 2);
    expect(fake.requests).toHaveLength(0);
    expect(await settled(id)).toMatchObject({ usdMicros: 0, tokens: 0 });
  });

  it.each([
    ['only a file', `${fileHead('file')}abc${END}`],
    ['only text fields', `${field('language', 'en')}--${BOUNDARY}--\r\n`],
  ])('missing, in a form with %s: refused for a dollar limit', async (_what, body) => {
    const { key } = await user({ usdPerDay: 5 });
    const res = await fetch(`${gateway.url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
      body,
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as any).error.code).toBe('model_not_allowed');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('a priced field given twice', () => {
  it('`n` before and after the file: the form fails before the upstream has all of it, nothing charged', async () => {
    const { id, key } = await user({ usdPerDay: 5 });
    const body = `${field('model', 'dall-e-2')}${field('n', '1')}${field('prompt', 'p')}${fileHead('image')}PNGDATA\r\n${field('n', '10')}--${BOUNDARY}--\r\n`;
    const res = await fetch(`${gateway.url}/v1/images/edits`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
      body,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error).toMatchObject({ code: 'invalid_multipart', param: 'n' });
    for (const seen of fake.requests) expect(seen.body.includes(Buffer.from(`--${BOUNDARY}--`))).toBe(false);
    expect(await settled(id)).toMatchObject({ usdMicros: 0 });
  });
});

describe('an image request too large to parse', () => {
  it('is reserved and charged at the dearest size and quality, which it does not show', async () => {
    const { id, key } = await user({ usdPerDay: 5 });
    // Past 1 MB the gateway reads only some top-level settings of a JSON body: `size` is not among them.
    const padded = `{"model":"dall-e-3","prompt":"a cat",${' '.repeat(1_100_000)}"size":"1024x1024","n":1}`;
    const res = await fetch(`${gateway.url}/v1/images/generations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: padded,
    });
    expect(res.status).toBe(200);
    expect(await settled(id)).toMatchObject({ usdMicros: 120_000, reservedUsdMicros: 0 });
    const poor = await user({ usdPerDay: 0.1 });
    const refused = await fetch(`${gateway.url}/v1/images/generations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${poor.key}`, 'content-type': 'application/json' },
      body: padded,
    });
    // One hd image at 1792x1024: $0.12.
    expect(refused.status).toBe(429);
    expect(fake.requests).toHaveLength(1);
  });
});

describe('absurd usage from the upstream', () => {
  const transcribe = (key: string) => {
    const body = `${field('model', 'gpt-4o-transcribe')}${fileHead('file')}${'A'.repeat(7500)}${END}`;
    return fetch(`${gateway.url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
      body,
    });
  };

  it('negative counts are no usage: the request is charged its worst case, marked estimated', async () => {
    const { id, key } = await user({ usdPerDay: 5 });
    fake.handle(() => ({ body: { text: 'x', usage: { type: 'tokens', input_tokens: -500, output_tokens: -7, total_tokens: -507 } } }));
    expect((await transcribe(key)).status).toBe(200);
    // The form's bytes at 750 a second, 20 audio tokens a second (below the 16,000-token window),
    // at $6 a million, and gpt-4o-transcribe's 2,000 output tokens at $10.
    const bytes = Buffer.byteLength(`${field('model', 'gpt-4o-transcribe')}${fileHead('file')}${'A'.repeat(7500)}${END}`);
    const audio = Math.ceil(bytes / 750) * 20;
    expect(await settled(id)).toMatchObject({ usdMicros: Math.ceil((audio * 6_000_000 + 2000 * 10_000_000) / 1e6), estimatedRequests: 1, reservedUsdMicros: 0 });
  });

  it('counts past what the ledger holds spend every limit, and never overflow or go negative', async () => {
    const { id, key } = await user({ usdPerDay: 5, tokensPerDay: 1_000_000 });
    fake.handle(() => ({ body: { text: 'x', usage: { type: 'tokens', input_tokens: 1e300, input_token_details: { audio_tokens: -1 }, output_tokens: 2.5, total_tokens: 1e300 } } }));
    expect((await transcribe(key)).status).toBe(200);
    const day = await settled(id);
    expect(day.usdMicros).toBe(MAX_AMOUNT);
    expect(day.tokens).toBe(MAX_AMOUNT);
    fake.reset();
    expect((await transcribe(key)).status).toBe(429);
    expect(fake.requests).toHaveLength(0);
  });
});
