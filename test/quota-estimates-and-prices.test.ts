// The pieces that put numbers on a request: the worst-case estimate (tokenizer plus output cap),
// the price table with its overrides, money rounded up to whole micro-dollars, the usage shapes
// OpenAI reports, and the OpenAI duration format of the x-ratelimit reset headers.
import { describe, expect, it } from 'vitest';
import { countText, outputCap } from '../src/quota/estimate.js';
import { estimateAt } from './helpers/estimate.js';
import { goDuration } from '../src/quota/headers.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import { normalizeUsage } from '../src/quota/usage.js';

const DEFAULT_MAX = 4096;
const estimate = (route: string, json: Record<string, unknown>) => estimateAt(route, json, DEFAULT_MAX);

describe('the worst-case estimate', () => {
  it('counts chat messages with the tokenizer, plus framing, and reserves max_tokens for each choice', () => {
    const json = { model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }], max_tokens: 50, n: 3 };
    expect(estimate('/chat/completions', json)).toMatchObject({
      model: 'gpt-4o-mini',
      promptTokens: 3 + 2 * 4 + countText('Be brief.') + countText('Hello there'),
      maxOutputTokens: 150,
      metered: true,
      outputBound: { tokens: 50, from: 'request' },
    });
  });

  it('says where the output bound of one answer came from, for a refusal to explain it', () => {
    const bound = (route: string, json: Record<string, unknown>) => estimate(route, json).outputBound;
    expect(bound('/chat/completions', { model: 'gpt-4o-mini', messages: [], max_completion_tokens: 7 })).toEqual({ tokens: 7, from: 'request' });
    expect(bound('/chat/completions', { model: 'gpt-4o-mini', messages: [], max_tokens: 1e9 })).toEqual({ tokens: 16_384, from: 'request_capped' });
    expect(bound('/chat/completions', { model: 'gpt-4o-mini', messages: [] })).toEqual({ tokens: 16_384, from: 'model_cap' });
    expect(bound('/responses', { model: 'someone-elses-model', input: 'x' })).toEqual({ tokens: DEFAULT_MAX, from: 'default_setting' });
    expect(bound('/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'x' })).toEqual({ tokens: 16, from: 'api_default' });
  });

  it("takes the model's output cap from the tokenizer's catalogue when max_tokens is not set", () => {
    expect(outputCap('gpt-4o-mini')).toBe(16_384);
    expect(outputCap('gpt-4o-mini-2024-07-18')).toBe(16_384);
    expect(estimate('/chat/completions', { model: 'gpt-4o-mini', messages: [] }).maxOutputTokens).toBe(16_384);
    expect(estimate('/chat/completions', { model: 'someone-elses-model', messages: [] }).maxOutputTokens).toBe(DEFAULT_MAX);
  });

  it("counts a max_tokens above the model's output cap as the cap, since the upstream refuses more", () => {
    const huge = Number.MAX_SAFE_INTEGER;
    expect(estimate('/chat/completions', { model: 'gpt-4o-mini', messages: [], max_tokens: huge, n: 2 }).maxOutputTokens).toBe(2 * 16_384);
    expect(outputCap('gpt-3.5-turbo-instruct')).toBe(4096);
    const prompts = ['a', 'b', 'c'];
    expect(estimate('/completions', { model: 'gpt-3.5-turbo-instruct', prompt: prompts, max_tokens: huge, n: 2 }).maxOutputTokens).toBe(3 * 2 * 4096);
    // Below the cap, max_tokens stands; a model of unknown cap keeps it whole (the ledger bounds it).
    expect(estimate('/chat/completions', { model: 'gpt-4o-mini', messages: [], max_tokens: 10 }).maxOutputTokens).toBe(10);
    expect(estimate('/chat/completions', { model: 'someone-elses-model', messages: [], max_tokens: huge }).maxOutputTokens).toBe(huge);
  });

  it('counts images at a fixed high-detail size and leaves URLs and base64 data out', () => {
    const content = [
      { type: 'text', text: 'What is this?' },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(100_000)}` } },
    ];
    expect(estimate('/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content }], max_tokens: 1 }).promptTokens).toBe(
      3 + 4 + countText('What is this?') + 1445,
    );
  });

  it('reads Responses input and instructions, embeddings input, and completions prompts', () => {
    expect(estimate('/responses', { model: 'gpt-4.1', input: 'Hi', instructions: 'Be kind', max_output_tokens: 9 })).toMatchObject({
      promptTokens: 3 + 4 + countText('Hi') + countText('Be kind'),
      maxOutputTokens: 9,
    });
    expect(estimate('/embeddings', { model: 'text-embedding-3-small', input: ['one', 'two'] })).toMatchObject({
      promptTokens: countText('one') + countText('two'),
      maxOutputTokens: 0,
    });
    expect(estimate('/completions', { model: 'gpt-3.5-turbo-instruct', prompt: ['a', 'b'], best_of: 2 })).toMatchObject({ maxOutputTokens: 16 * 2 * 2 });
  });

  it('counts special-token text as the plain text it is', () => {
    expect(countText('<|endoftext|>')).toBeGreaterThan(1);
  });

  it('reserves nothing on endpoints that bill no tokens', () => {
    expect(estimate('/files', { purpose: 'batch' })).toEqual({ promptTokens: 0, maxOutputTokens: 0, metered: false });
  });
});

describe('the price table', () => {
  const table = new PriceTable({ 'gpt-4o-mini': { input: 1, output: 2 }, 'llama-*': { input: 0.5, cachedInput: 0.1, output: 0.5 } });

  it('has OpenAI list prices, dated snapshots priced as their alias, and nothing for unknown models', () => {
    expect(new PriceTable().lookup('gpt-4o')).toMatchObject({ input: 2_500_000, cachedInput: 1_250_000, output: 10_000_000 });
    expect(new PriceTable().lookup('gpt-4o-2024-08-06')).toMatchObject({ input: 2_500_000, cachedInput: 1_250_000, output: 10_000_000 });
    expect(new PriceTable().lookup('gpt-4o-2024-05-13')).toMatchObject({ input: 5_000_000, cachedInput: 5_000_000, output: 15_000_000 });
    expect(new PriceTable().lookup('text-embedding-3-small')).toMatchObject({ input: 20_000, cachedInput: 20_000, output: 0 });
    expect(new PriceTable().lookup('my-model')).toBeUndefined();
  });

  it('takes overrides from the settings, exact names and globs', () => {
    expect(table.lookup('gpt-4o-mini')).toMatchObject({ input: 1_000_000, cachedInput: 1_000_000, output: 2_000_000 });
    expect(table.lookup('llama-3-70b')).toMatchObject({ input: 500_000, cachedInput: 100_000, output: 500_000 });
  });

  it('prices usage in whole micro-dollars, rounded up, cached input at its own price', () => {
    const mini = new PriceTable().lookup('gpt-4o-mini')!;
    expect(costMicros(mini, { input: 1000, cachedInput: 400, output: 100 })).toBe(Math.ceil((600 * 150_000 + 400 * 75_000 + 100 * 600_000) / 1e6));
    expect(costMicros(mini, { input: 1, cachedInput: 0, output: 0 })).toBe(1);
    expect(costMicros(mini, { input: 0, cachedInput: 0, output: 0 })).toBe(0);
  });
});

describe('usage as OpenAI reports it', () => {
  it.each([
    [{ prompt_tokens: 5, completion_tokens: 7, total_tokens: 12, prompt_tokens_details: { cached_tokens: 2 } }, { input: 5, cachedInput: 2, output: 7 }],
    [{ input_tokens: 5, output_tokens: 7, total_tokens: 12, input_tokens_details: { cached_tokens: 9 } }, { input: 5, cachedInput: 5, output: 7 }],
    [{ prompt_tokens: 8, total_tokens: 8 }, { input: 8, cachedInput: 0, output: 0 }],
    [{ type: 'duration', seconds: 12 }, { input: 0, cachedInput: 0, output: 0, seconds: 12 }],
    [{ prompt_tokens: -1 }, undefined],
    [null, undefined],
  ])('%j reads as %j', (usage, expected) => {
    expect(normalizeUsage(usage)).toEqual(expected);
  });
});

describe('reset durations', () => {
  it.each([
    [0, '0ms'],
    [6, '6ms'],
    [999.2, '1s'],
    [1500, '1.5s'],
    [59_999, '59.999s'],
    [60_000, '1m0s'],
    [90_500, '1m30.5s'],
    [3_600_000, '1h0m0s'],
    [60, '60ms'],
    [1060, '1.06s'],
    [2000, '2s'],
    [61_005, '1m1.005s'],
    [3_723_400, '1h2m3.4s'],
  ])('%i ms is %s', (ms, text) => {
    expect(goDuration(ms)).toBe(text);
  });
});
