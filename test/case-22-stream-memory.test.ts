// Case 22 (docs/reliability.md), the memory side: streaming.test.ts checks that awkwardly split
// events (every byte, CRLF, split UTF-8, comments, error events, a 1 MB line) arrive byte for byte;
// here 64 MB of 1 MB events, cut at odd sizes, cross the gateway while its memory is sampled. What
// it holds must be bounded by a line or so, not grow with the stream.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayFixture, cutEvery, startRelay } from './helpers/relay-fixture.js';

const POOL_KEY = 'sk-pool-case-22-memory-0001';
const MB = 1024 * 1024;
let relay: RelayFixture;

beforeAll(async () => {
  relay = await startRelay(POOL_KEY);
});
afterAll(() => relay.close());

// A full collection before each sample, so that what is measured is what is held, not garbage
// waiting for the collector (each 1 MB line makes a few MB of that as it is read).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function memory(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe('case 22: long lines, split anywhere', () => {
  it('64 MB of 1 MB events pass unchanged and in order while the memory stays within a few lines', async () => {
    // Each event a chunk of about 1 MB of text (words: the tokenizer's fast case), CRLF endings.
    const event = (n: number) =>
      `data: ${JSON.stringify({ id: 'chatcmpl-m', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: `${n} ${'word '.repeat(MB / 5)}` } }] })}\r\n\r\n`;
    const whole = Buffer.from(Array.from({ length: 64 }, (_, n) => event(n)).join('') + 'data: [DONE]\r\n\r\n');
    // Pieces of 64 KB + 7 bytes: lines, CRLFs and JSON cut at every possible place along the way.
    relay.fake.handle(() => ({ headers: { 'content-type': 'text/event-stream' }, chunks: cutEvery(whole, 64 * 1024 + 7) }));

    const before = memory();
    let peak = before;
    let samples = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, memory());
      samples++;
    }, 100);
    const res = await request(`${relay.gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${relay.userKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'long' }], stream: true }),
    });
    // The received bytes are compared as they come, never kept whole on this side either.
    let at = 0;
    let same = true;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (!whole.subarray(at, at + chunk.length).equals(chunk)) same = false;
      at += chunk.length;
    }
    clearInterval(sampler);
    expect(res.statusCode).toBe(200);
    expect(at).toBe(whole.length);
    expect(same).toBe(true);
    // The test's own 64 MB source is held before `before`; what the relay holds at any moment is
    // a few lines and socket buffers, never the stream.
    console.info(`case 22: 64 MB streamed; ${samples} samples; most held at once ${((peak - before) / MB).toFixed(1)} MB over ${(before / MB).toFixed(0)} MB`);
    expect(samples).toBeGreaterThan(3);
    expect(peak - before).toBeLessThan(24 * MB);
  }, 60_000);
});
