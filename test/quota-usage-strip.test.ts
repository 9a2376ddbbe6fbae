// The usage the gateway asked for, taken back out of the client's stream byte for byte: whatever
// the chunking, the client gets the stream OpenAI would have sent without include_usage, that is
// the same stream less exactly the usage chunk and every `,"usage":null`, and the usage is found.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageTap } from '../src/relay/usage-tap.js';

const SSE = { 'content-type': 'text/event-stream' };
const base = { id: 'chatcmpl-p', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', system_fingerprint: 'fp_x' };

interface Shape {
  newline: string;
  data: string;
  contents: string[];
  choices: number;
  keepAlive: boolean;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** The stream as OpenAI writes it, with or without include_usage. */
function stream(shape: Shape, withUsage: boolean): Buffer {
  const usageNull = withUsage ? { usage: null } : {};
  const event = (value: unknown) => `${shape.data}${JSON.stringify(value)}${shape.newline}${shape.newline}`;
  const choices = (make: (index: number) => object) => Array.from({ length: shape.choices }, (_, index) => make(index));
  const parts = [event({ ...base, choices: choices((index) => ({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null })), ...usageNull })];
  for (const [i, content] of shape.contents.entries()) {
    parts.push(event({ ...base, choices: [{ index: i % shape.choices, delta: { content }, logprobs: null, finish_reason: null }], ...usageNull }));
    if (shape.keepAlive && i % 3 === 0) parts.push(`: keep-alive${shape.newline}${shape.newline}`);
  }
  for (let index = 0; index < shape.choices; index++) {
    parts.push(event({ ...base, choices: [{ index, delta: {}, logprobs: null, finish_reason: index ? 'length' : 'stop' }], ...usageNull }));
  }
  if (withUsage) parts.push(event({ ...base, choices: [], usage: shape.usage }));
  parts.push(`${shape.data}[DONE]${shape.newline}${shape.newline}`);
  return Buffer.from(parts.join(''));
}

/** The bytes the client gets and the usage the tap found, the stream cut at `cuts`. */
function relay(bytes: Buffer, cuts: number[]): { out: Buffer; usage: unknown } {
  const tap = new UsageTap({ stripUsage: true });
  tap.start(200, SSE);
  const out: Buffer[] = [];
  let from = 0;
  for (const at of [...cuts, bytes.length]) {
    out.push(tap.chunk(bytes.subarray(from, at)));
    from = at;
  }
  tap.end(true);
  return { out: Buffer.concat(out), usage: tap.measure(() => 0) };
}

// Text that looks like what is cut, inside the content strings (escaped there, so never cut).
const TRICKY = [',"usage":null', ',"usage":null}', '"usage":{"prompt_tokens":1}', '"finish_reason":"stop"', 'data: {"choices":[]}', '\n\n', '\r\n', '\r', '😀', 'é', '\\', '"'];
const shapes = fc.record({
  newline: fc.constantFrom('\n', '\r\n', '\r'),
  data: fc.constantFrom('data: ', 'data:'),
  contents: fc.array(fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom(...TRICKY)), { maxLength: 24 }),
  choices: fc.integer({ min: 1, max: 2 }),
  keepAlive: fc.boolean(),
  usage: fc.record({ prompt_tokens: fc.nat(100_000), completion_tokens: fc.nat(100_000), total_tokens: fc.nat(200_000) }),
});

function cutsOf(length: number, fractions: number[]): number[] {
  return [...new Set(fractions.map((f) => Math.floor(f * length)))].filter((at) => at > 0 && at < length).sort((a, b) => a - b);
}

describe('a stream whose usage the gateway asked for', () => {
  it('reaches the client as the stream without include_usage, whatever the cuts, and its usage is found', () => {
    fc.assert(
      fc.property(shapes, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 60 }), (shape, fractions) => {
        const upstream = stream(shape, true);
        const expected = stream(shape, false);
        const whole = relay(upstream, []);
        const split = relay(upstream, cutsOf(upstream.length, fractions));
        expect(whole.out.toString('latin1')).toBe(expected.toString('latin1'));
        expect(split.out.toString('latin1')).toBe(expected.toString('latin1'));
        const found = { usage: { input: shape.usage.prompt_tokens, cachedInput: 0, output: shape.usage.completion_tokens }, estimated: false };
        expect(whole.usage).toEqual(found);
        expect(split.usage).toEqual(found);
      }),
      { numRuns: 400 },
    );
  });

  it('does so for a long answer too, where the finish comes many kilobytes into the stream', () => {
    fc.assert(
      fc.property(shapes, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 400 }), (shape, fractions) => {
        const long = { ...shape, contents: Array.from({ length: 300 }, (_, i) => shape.contents[i % Math.max(1, shape.contents.length)] ?? `w${i}`) };
        const upstream = stream(long, true);
        expect(upstream.length).toBeGreaterThan(40_000);
        expect(relay(upstream, cutsOf(upstream.length, fractions)).out.toString('latin1')).toBe(stream(long, false).toString('latin1'));
      }),
      { numRuns: 40 },
    );
  });

  it('does so cut at every byte, and at every event', () => {
    fc.assert(
      fc.property(shapes, (shape) => {
        const upstream = stream(shape, true);
        const expected = stream(shape, false).toString('latin1');
        const everyByte = Array.from({ length: upstream.length - 1 }, (_, i) => i + 1);
        expect(relay(upstream, everyByte).out.toString('latin1')).toBe(expected);
        const text = upstream.toString('latin1');
        const double = `${shape.newline}${shape.newline}`;
        const atEvents: number[] = [];
        for (let at = text.indexOf(double); at !== -1; at = text.indexOf(double, at + 1)) atEvents.push(at + double.length);
        expect(relay(upstream, atEvents.filter((at) => at < upstream.length)).out.toString('latin1')).toBe(expected);
      }),
      { numRuns: 100 },
    );
  });

  it('hands each chunk of an event per chunk on as the same Buffer but for the ones it cuts', () => {
    const shape: Shape = { newline: '\n', data: 'data: ', contents: ['Hi'], choices: 1, keepAlive: false, usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } };
    const events = stream(shape, false).toString('utf8').split(/(?<=\n\n)/).map((e) => Buffer.from(e));
    const tap = new UsageTap({ stripUsage: true });
    tap.start(200, SSE);
    for (const event of events) expect(tap.chunk(event)).toBe(event);
  });

  it('keeps a usage chunk that came before any choice finished and was partly sent, and still reads its usage', () => {
    const usage = 'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n';
    const tap = new UsageTap({ stripUsage: true });
    tap.start(200, SSE);
    const out = Buffer.concat([tap.chunk(Buffer.from(usage.slice(0, 20))), tap.chunk(Buffer.from(usage.slice(20)))]);
    tap.end(true);
    expect(out.toString()).toBe(usage);
    expect(tap.measure(() => 0)).toEqual({ usage: { input: 5, cachedInput: 0, output: 2 }, estimated: false });
  });

  it('charges the text streamed when the stream breaks off before its usage, whatever the cuts', () => {
    const shape: Shape = { newline: '\r\n', data: 'data:', contents: ['Grüße, ', 'wörld 😀', ' "usage":null,'], choices: 1, keepAlive: true, usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } };
    const bytes = stream(shape, true);
    const broken = bytes.subarray(0, bytes.indexOf('"finish_reason":"stop"'));
    const byByte = new UsageTap({ stripUsage: true });
    const plain = new UsageTap({ stripUsage: false });
    for (const tap of [byByte, plain]) tap.start(200, SSE);
    for (let i = 0; i < broken.length; i++) byByte.chunk(broken.subarray(i, i + 1));
    plain.chunk(broken);
    for (const tap of [byByte, plain]) tap.end(false);
    expect(byByte.measure(() => 7)).toEqual(plain.measure(() => 7));
    expect(byByte.measure(() => 7)?.usage.output).toBeGreaterThan(3);
  });
});
