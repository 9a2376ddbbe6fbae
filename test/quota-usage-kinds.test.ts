// Every kind of usage OpenAI reports, read from each of its shapes and priced at its own rate; the
// worst case at the dearest rates; overrides with the new rates; a form's priced fields read
// before its file.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { scanLeadingFields } from '../src/relay/form-fields.js';
import { MAX_AMOUNT } from '../src/quota/amounts.js';
import { PriceTable, costMicros, worstCostMicros } from '../src/quota/prices.js';
import { audioSeconds, formEstimate } from '../src/quota/units-estimate.js';
import { normalizeUsage } from '../src/quota/usage.js';

const prices = new PriceTable();
const price = (model: string, image?: { size?: string; quality?: string }) => {
  const found = prices.lookup(model, image);
  if (!found) throw new Error(`no price for ${model}`);
  return found;
};

describe('usage in each of OpenAI shapes', () => {
  it.each([
    [
      'chat with audio',
      { prompt_tokens: 100, completion_tokens: 50, prompt_tokens_details: { cached_tokens: 10, audio_tokens: 40 }, completion_tokens_details: { audio_tokens: 30 } },
      { input: 100, cachedInput: 10, output: 50, audioInput: 40, audioOutput: 30 },
    ],
    [
      'an image answer',
      { input_tokens: 60, output_tokens: 4160, input_tokens_details: { text_tokens: 20, image_tokens: 40, cached_tokens: 0 }, output_tokens_details: { text_tokens: 0, image_tokens: 4160 } },
      { input: 60, cachedInput: 0, output: 4160, imageInput: 40, imageOutput: 4160 },
    ],
    [
      'a transcription',
      { type: 'tokens', input_tokens: 300, input_token_details: { text_tokens: 0, audio_tokens: 300 }, output_tokens: 10, total_tokens: 310 },
      { input: 300, cachedInput: 0, output: 10, audioInput: 300 },
    ],
    [
      'realtime response.done',
      {
        total_tokens: 500,
        input_tokens: 300,
        output_tokens: 200,
        input_token_details: { text_tokens: 100, audio_tokens: 200, cached_tokens: 150, cached_tokens_details: { text_tokens: 50, audio_tokens: 100 } },
        output_token_details: { text_tokens: 50, audio_tokens: 150 },
      },
      { input: 300, cachedInput: 150, output: 200, audioInput: 200, cachedAudioInput: 100, audioOutput: 150 },
    ],
    ['whisper', { type: 'duration', seconds: 12.2 }, { input: 0, cachedInput: 0, output: 0, seconds: 13 }],
  ])('%s', (_what, usage, expected) => {
    expect(normalizeUsage(usage)).toEqual(expected);
  });

  it('absurd numbers: negatives are absent, fractions round up, huge ones stop at what the ledger holds, parts at their whole', () => {
    expect(normalizeUsage({ input_tokens: -5, output_tokens: -1 })).toBeUndefined();
    expect(normalizeUsage({ input_tokens: 1.2, output_tokens: 1e300, input_tokens_details: { audio_tokens: 99, cached_tokens: -4 } })).toEqual({
      input: 2,
      cachedInput: 0,
      output: MAX_AMOUNT,
      audioInput: 2,
    });
    expect(normalizeUsage({ type: 'duration', seconds: -30 })).toEqual({ input: 0, cachedInput: 0, output: 0 });
    expect(normalizeUsage({ type: 'duration', seconds: Number.POSITIVE_INFINITY })).toMatchObject({ seconds: MAX_AMOUNT });
  });
});

describe('prices of each kind', () => {
  it('realtime: text, audio, and each cached, at their own rates', () => {
    const usage = normalizeUsage({
      input_tokens: 300,
      output_tokens: 200,
      input_token_details: { audio_tokens: 200, cached_tokens: 150, cached_tokens_details: { audio_tokens: 100 } },
      output_token_details: { audio_tokens: 150 },
    });
    // gpt-realtime: text $4 in ($0.40 cached), $16 out; audio $32 in ($0.40 cached), $64 out.
    const expected = (50 * 4 + 50 * 0.4 + 100 * 32 + 100 * 0.4 + 50 * 16 + 150 * 64) * 1;
    expect(costMicros(price('gpt-realtime'), usage!)).toBe(Math.ceil(expected));
  });

  it('per image by size and quality, the dearest when either is not known', () => {
    expect(price('dall-e-3', { size: '1024x1024', quality: 'standard' }).perImage).toBe(40_000);
    expect(price('dall-e-3', { size: '1024x1792', quality: 'hd' }).perImage).toBe(120_000);
    expect(price('dall-e-3', { size: '1024x1024', quality: 'auto' }).perImage).toBe(120_000);
    expect(price('dall-e-3', {}).perImage).toBe(120_000);
    expect(price('dall-e-2', { size: '256x256', quality: 'standard' }).perImage).toBe(16_000);
    expect(costMicros(price('dall-e-2', { size: '512x512' }), { input: 0, cachedInput: 0, output: 0, images: 3 })).toBe(54_000);
  });

  it('per minute and per thousand characters', () => {
    expect(costMicros(price('whisper-1'), { input: 0, cachedInput: 0, output: 0, seconds: 90 })).toBe(9_000);
    expect(costMicros(price('tts-1'), { input: 0, cachedInput: 0, output: 0, characters: 1000 })).toBe(15_000);
    expect(costMicros(price('tts-1-hd'), { input: 0, cachedInput: 0, output: 0, characters: 7 })).toBe(210);
  });

  it('the worst case: every token at the dearest rate of its side, plus the units', () => {
    // gpt-4o-audio-preview: audio is its dearest input ($40) and output ($80).
    expect(worstCostMicros(price('gpt-4o-audio-preview'), { input: 1000, output: 1000 })).toBe(40_000 + 80_000);
    expect(worstCostMicros(price('dall-e-3', { size: '1792x1024', quality: 'hd' }), { input: 50, output: 0 }, { images: 1 })).toBe(120_000);
    expect(worstCostMicros(price('whisper-1'), { input: 0, output: 0 }, { seconds: 600 })).toBe(60_000);
  });

  it('overrides from the settings take the new rates, and refuse what is not a price', () => {
    const table = new PriceTable({
      'my-tts': { input: 0, perMillionChars: 20 },
      'my-image-*': { input: 1, perImage: { '512x512': 0.5, 'hd/512x512': 0.75 } },
      'my-voice': { input: 1, output: 2, audioInput: 10, audioOutput: 20, cachedAudioInput: 0.5 },
    });
    expect(table.lookup('my-tts')).toMatchObject({ perThousandChars: 20_000 });
    expect(table.lookup('my-image-x', { size: '512x512', quality: 'hd' })).toMatchObject({ perImage: 750_000 });
    expect(table.lookup('my-voice')).toMatchObject({ audioInput: 10_000_000, audioOutput: 20_000_000, cachedAudioInput: 500_000, imageInput: 1_000_000 });
    const load = (prices: unknown) => () => loadConfig({}, { prices } as never);
    expect(load({ m: { input: 1, perImage: { 'hd/512x512': 1 }, perMinute: 0.5 } })).not.toThrow();
    expect(load({ m: { input: 1, perImage: { 'not a size': 1 } } })).toThrow();
    expect(load({ m: { input: 1, perMinute: -1 } })).toThrow();
    expect(load({ m: { input: 1, audioOutput: 1e9 } })).toThrow();
  });
});

describe('the worst case of a form', () => {
  const form = (fields: Record<string, string>, complete: boolean, bytes = 1000) => ({ fields: new Map(Object.entries(fields)), complete, bytes });

  it('audio: the longest a file can play at 6 kbit/s, no more than 25 MB of it', () => {
    expect(audioSeconds(750)).toBe(1);
    expect(audioSeconds(512 * 1024 * 1024)).toBe(Math.ceil((25 * 1024 * 1024) / 750));
    expect(formEstimate('audio', 'whisper-1', form({}, false, 75_000), price('whisper-1'), 0)).toEqual({ promptTokens: 0, maxOutputTokens: 0, units: { seconds: 100 } });
    // gpt-4o-transcribe: 20 audio tokens a second, within its 16,000-token window.
    expect(formEstimate('audio', 'gpt-4o-transcribe', form({}, false, 75_000), price('gpt-4o-transcribe'), 2000)).toMatchObject({ promptTokens: 2000, maxOutputTokens: 2000 });
    expect(formEstimate('audio', 'gpt-4o-transcribe', form({}, false, 10_000_000), price('gpt-4o-transcribe'), 2000)).toMatchObject({ promptTokens: 16_000 });
  });

  it('images: fields after the file at their worst, absent ones at the API defaults', () => {
    const dalle = price('dall-e-2');
    expect(formEstimate('images', 'dall-e-2', form({ n: '2', size: '256x256' }, false), dalle, 0).units).toEqual({ images: 2, image: { size: '256x256', quality: undefined } });
    expect(formEstimate('images', 'dall-e-2', form({}, false), dalle, 0).units).toEqual({ images: 10, image: { size: undefined, quality: undefined } });
    expect(formEstimate('images', 'dall-e-2', form({}, true), dalle, 0).units).toEqual({ images: 1, image: { size: '1024x1024', quality: 'standard' } });
    expect(formEstimate('images', 'gpt-image-1', form({ n: '3', quality: 'low', size: '1024x1024' }, false), price('gpt-image-1'), 0).maxOutputTokens).toBe(3 * 272);
    expect(formEstimate('images', 'gpt-image-1', form({ n: '99' }, false), price('gpt-image-1'), 0).maxOutputTokens).toBe(10 * 6240);
  });

  it('reads the priced fields before the file, array fields more than once, a second `n` as twice', () => {
    const b = 'xyz';
    const part = (name: string, value: string) => `--${b}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
    const file = `--${b}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF`;
    const names = new Set(['model', 'n', 'timestamp_granularities[]']);
    const scan = scanLeadingFields(Buffer.from(part('model', 'whisper-1') + part('timestamp_granularities[]', 'word') + part('timestamp_granularities[]', 'segment') + file), b, names);
    // Where each first value lies too (the model's, for an alias or a deployment put in its place).
    const at = (text: string, value: string) => [text.indexOf(value), text.indexOf(value) + value.length];
    const head = part('model', 'whisper-1') + part('timestamp_granularities[]', 'word');
    expect(scan).toEqual({
      kind: 'read',
      fields: new Map([['model', 'whisper-1'], ['timestamp_granularities[]', 'word']]),
      complete: false,
      spans: new Map([['model', at(head, 'whisper-1')], ['timestamp_granularities[]', at(head, 'word')]]),
    });
    expect(scanLeadingFields(Buffer.from(part('n', '1') + part('n', '2') + file), b, names)).toEqual({ kind: 'twice', name: 'n' });
    expect(scanLeadingFields(Buffer.from(`${part('n', '1')}--${b}--\r\n`), b, names)).toEqual({ kind: 'read', fields: new Map([['n', '1']]), complete: true, spans: new Map([['n', at(part('n', '1'), '1')]]) });
  });
});
