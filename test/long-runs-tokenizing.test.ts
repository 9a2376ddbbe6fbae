// A text with a long run of one kind of character (letters, spaces, CJK, emoji without a break) is
// counted in time linear in its length: the tokenizer's time grows with the square of a run's
// length, and a chat message of 200 K letters held the process for about a minute, serving
// nothing (src/quota/estimate.ts, countText). Found by fuzzing SSE streams (test/fuzz-sse.test.ts):
// a stream that broke off after a long run of text is charged by counting it, on the event loop.
import { countTokens } from 'gpt-tokenizer';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countText } from '../src/quota/estimate.js';
import { FUZZ_SEED } from './helpers/fuzz.js';
import { registerSecret } from './helpers/log-capture.js';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';

const exact = (text: string): number => countTokens(text, { disallowedSpecial: new Set() });

describe('countText', () => {
  it.each([
    ['letters', 'g'.repeat(1_000_000)],
    ['two letters', 'ab'.repeat(500_000)],
    ['spaces', ' '.repeat(1_000_000)],
    ['CJK', '漢'.repeat(500_000)],
    ['emoji', '😀'.repeat(300_000)],
  ])('counts a run of a million characters (%s) without a hang', (_name, text) => {
    const started = performance.now();
    const tokens = countText(text);
    // A bound for a hang (it takes tens of ms; whole, it would take hours).
    expect(performance.now() - started).toBeLessThan(5_000);
    // Counted (the property below: never fewer than whole).
    expect(tokens).toBeGreaterThan(text.length / 200);
  });

  it('counts a text without long runs as the tokenizer does, and one with them never lower', () => {
    const piece = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }), fc.tuple(fc.constantFrom('g', ' ', 'ab', '漢', '😀', '!', '\n', '7'), fc.integer({ min: 1, max: 700 })).map(([c, n]) => c.repeat(n)));
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
        const text = pieces.join('');
        if (!/\S{257,}|\s{257,}/.test(text)) expect(countText(text)).toBe(exact(text));
        else expect(countText(text)).toBeGreaterThanOrEqual(exact(text));
      }),
      { seed: FUZZ_SEED, numRuns: 1000 },
    );
  });
});

describe('a chat message of one long run of letters', () => {
  let fx: RelayFixture;
  // A user with a token limit: their requests are estimated before they are admitted.
  let key: string;

  beforeAll(async () => {
    fx = await startRelay('sk-pool-long-runs-0123456789abcdef');
    key = await fx.gateway.createUserKey('limited', { limits: { tokensPerDay: 10_000_000 } });
    registerSecret(key);
  });

  afterAll(async () => {
    await fx.close();
  });

  it('is estimated, relayed and answered without holding the process', async () => {
    // Within the characters a request has tokenized (TOKENIZE_BUDGET), past which a string counts as its bytes.
    const content = 'ab'.repeat(100_000);
    const started = performance.now();
    const res = await fetch(`${fx.gateway.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 5 }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    // A bound for a hang: whole, the run took about a minute of CPU before the request was even sent.
    expect(performance.now() - started).toBeLessThan(20_000);
    expect(fx.fake.requests).toHaveLength(1);
  });
});
