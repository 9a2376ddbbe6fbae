// The usage tap on its own: usage and streamed text found whatever the chunking (lines split at any
// byte, CRLF and lone CR, split UTF-8, comments, 1 MB lines), chunks passed on uncopied when
// nothing is taken out, and the injected usage taken out exactly when the gateway asked for it.
import { describe, expect, it } from 'vitest';
import { sseEvents } from '../src/dev/fake-upstream.js';
import { countText } from '../src/quota/estimate.js';
import { UsageTap } from '../src/relay/usage-tap.js';

const SSE = { 'content-type': 'text/event-stream' };
const JSON_TYPE = { 'content-type': 'application/json' };

function cut(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

function pass(tap: UsageTap, chunks: Buffer[], headers: Record<string, string> = SSE, status = 200): Buffer {
  tap.start(status, headers);
  const out = Buffer.concat(chunks.map((c) => tap.chunk(c)));
  tap.end(true);
  return out;
}

const base = { id: 'chatcmpl-t', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini' };
const USAGE = { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13, prompt_tokens_details: { cached_tokens: 2 } };

function chat(withUsage: boolean, newline = '\n'): Buffer {
  const chunk = (content: string | undefined, finish: string | null) => ({
    ...base,
    choices: [{ index: 0, delta: content === undefined ? {} : { content }, finish_reason: finish }],
    ...(withUsage ? { usage: null } : {}),
  });
  const events: object[] = [chunk('', null), chunk('Grüße, ', null), chunk('wörld 😀 "usage":null,', null), chunk(undefined, 'stop')];
  if (withUsage) events.push({ ...base, choices: [], usage: USAGE });
  return Buffer.from(sseEvents(events, { done: true }).join('').replace(/\n/g, newline));
}

const SIZES = [1, 2, 3, 5, 7, 13, 64, 100_000];

describe('an SSE answer the tap only watches', () => {
  it.each(SIZES)('passes every chunk on as the same Buffer and finds the usage, cut every %i bytes', (size) => {
    const tap = new UsageTap({ stripUsage: false });
    tap.start(200, SSE);
    for (const chunk of cut(chat(true), size)) expect(tap.chunk(chunk)).toBe(chunk);
    tap.end(true);
    expect(tap.measure(() => 100)).toEqual({ usage: { input: 9, cachedInput: 2, output: 4 }, estimated: false });
  });

  it.each(['\r\n', '\r'])('reads lines ended by %j, comments and a 1 MB line alike', (newline) => {
    const big = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'é'.repeat(512 * 1024) } }] })}${newline}${newline}`;
    const stream = Buffer.concat([Buffer.from(`: keep-alive${newline}${newline}event: message${newline}`), Buffer.from(big), chat(true, newline)]);
    const tap = new UsageTap({ stripUsage: false });
    expect(pass(tap, cut(stream, 4099)).equals(stream)).toBe(true);
    expect(tap.measure(() => 0)).toEqual({ usage: { input: 9, cachedInput: 2, output: 4 }, estimated: false });
  });

  it('charges a stream without usage its prompt and the text streamed, as estimated', () => {
    const tap = new UsageTap({ stripUsage: false });
    tap.start(200, SSE);
    for (const chunk of cut(chat(false), 3)) tap.chunk(chunk);
    tap.end(false);
    expect(tap.measure(() => 21)).toEqual({ usage: { input: 21, cachedInput: 0, output: countText('Grüße, wörld 😀 "usage":null,') }, estimated: true });
  });

  // Upstreams write an event per chunk: whole lines, which the tap keeps unsplit until it needs
  // their text. Cut at events, or at events with one cut inside a line, it must read the same.
  const byEvent = (bytes: Buffer): Buffer[] => bytes.toString('utf8').split(/(?<=\n\n)/).map((e) => Buffer.from(e));
  const mixed = (bytes: Buffer): Buffer[] => {
    const [first = Buffer.alloc(0), second = Buffer.alloc(0), ...rest] = byEvent(bytes);
    return [first, second.subarray(0, 9), second.subarray(9), ...rest];
  };
  it.each([
    ['an event per chunk', byEvent],
    ['an event per chunk but one cut inside a line', mixed],
  ])('%s: finds the usage, or charges the text streamed', (_name, cutter) => {
    const withUsage = new UsageTap({ stripUsage: false });
    withUsage.start(200, SSE);
    for (const chunk of cutter(chat(true))) expect(withUsage.chunk(chunk)).toBe(chunk);
    withUsage.end(true);
    expect(withUsage.measure(() => 100)).toEqual({ usage: { input: 9, cachedInput: 2, output: 4 }, estimated: false });

    const broken = new UsageTap({ stripUsage: false });
    broken.start(200, SSE);
    for (const chunk of cutter(chat(false))) broken.chunk(chunk);
    broken.end(false);
    expect(broken.measure(() => 21)).toEqual({ usage: { input: 21, cachedInput: 0, output: countText('Grüße, wörld 😀 "usage":null,') }, estimated: true });
  });

  it('counts the deltas of Responses events', () => {
    const events = [
      { type: 'response.output_text.delta', delta: 'Hello' },
      { type: 'response.output_text.delta', delta: ' there' },
    ];
    const tap = new UsageTap({ stripUsage: false });
    pass(tap, [Buffer.from(sseEvents(events, { event: (e) => (e as { type: string }).type }).join(''))]);
    expect(tap.measure(() => 3)).toEqual({ usage: { input: 3, cachedInput: 0, output: countText('Hello there') }, estimated: true });
  });
});

describe('an SSE answer whose usage the gateway asked for', () => {
  it.each(SIZES)('reaches the client as the stream it asked for, cut every %i bytes', (size) => {
    const tap = new UsageTap({ stripUsage: true });
    expect(pass(tap, cut(chat(true), size)).toString('utf8')).toBe(chat(false).toString('utf8'));
    expect(tap.measure(() => 100)).toEqual({ usage: { input: 9, cachedInput: 2, output: 4 }, estimated: false });
  });

  it.each([1, 4, 9])('does so with CRLF line ends too, cut every %i bytes', (size) => {
    const tap = new UsageTap({ stripUsage: true });
    expect(pass(tap, cut(chat(true, '\r\n'), size)).toString('utf8')).toBe(chat(false, '\r\n').toString('utf8'));
  });

  it('hands a chunk on uncopied when nothing in it is taken out', () => {
    const tap = new UsageTap({ stripUsage: true });
    tap.start(200, SSE);
    const chunk = Buffer.from('data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n');
    expect(tap.chunk(chunk)).toBe(chunk);
  });

  it('sends the start of a line at once while no choice has finished', () => {
    const tap = new UsageTap({ stripUsage: true });
    tap.start(200, SSE);
    expect(tap.chunk(Buffer.from('data: {"n":0}\n\ndata: {"n":1')).toString()).toBe('data: {"n":0}\n\ndata: {"n":1');
    expect(tap.chunk(Buffer.from('}\n\n')).toString()).toBe('}\n\n');
  });

  it('holds back only what may begin a usage field to take out', () => {
    const tap = new UsageTap({ stripUsage: true });
    tap.start(200, SSE);
    expect(tap.chunk(Buffer.from('data: {"choices":[],"x":1,"usa')).toString()).toBe('data: {"choices":[],"x":1');
    expect(tap.chunk(Buffer.from('ge":null}\n\n')).toString()).toBe('}\n\n');
  });

  it('leaves an error answer alone and charges nothing for it', () => {
    const tap = new UsageTap({ stripUsage: true });
    const body = Buffer.from('{"error":{"message":"no","usage":null}}');
    expect(pass(tap, [body], JSON_TYPE, 400).equals(body)).toBe(true);
    expect(tap.measure(() => 10)).toBeUndefined();
  });
});

describe('a JSON answer', () => {
  it('yields the usage at its end, past megabytes of data, whatever the chunking', () => {
    const answer = Buffer.from(
      JSON.stringify({
        object: 'list',
        data: Array.from({ length: 3000 }, (_, i) => ({ object: 'embedding', index: i, embedding: Array.from({ length: 64 }, () => 0.123456789) })),
        note: 'a "usage": {"prompt_tokens": 1} inside a string',
        model: 'text-embedding-3-small',
        usage: { prompt_tokens: 77, total_tokens: 77 },
      }),
    );
    expect(answer.length).toBeGreaterThan(2_000_000);
    const tap = new UsageTap({ stripUsage: false });
    tap.start(200, JSON_TYPE);
    for (const chunk of cut(answer, 65_536)) expect(tap.chunk(chunk)).toBe(chunk);
    tap.end(true);
    expect(tap.measure(() => 5)).toEqual({ usage: { input: 77, cachedInput: 0, output: 0 }, estimated: false });
  });

  it('yields the usage of a Responses object and of an image answer', () => {
    for (const [usage, expected] of [
      [{ input_tokens: 10, input_tokens_details: { cached_tokens: 4 }, output_tokens: 7, total_tokens: 17 }, { input: 10, cachedInput: 4, output: 7 }],
      [{ input_tokens: 50, output_tokens: 4160, total_tokens: 4210, input_tokens_details: { text_tokens: 50, image_tokens: 0 } }, { input: 50, cachedInput: 0, output: 4160 }],
    ] as const) {
      const tap = new UsageTap({ stripUsage: false });
      pass(tap, [Buffer.from(JSON.stringify({ id: 'x', output: [{ type: 'message', content: [{ text: '{"usage":1}' }] }], usage }))], JSON_TYPE);
      expect(tap.measure(() => 0)).toEqual({ usage: expected, estimated: false });
    }
  });

  it('falls back to the prompt estimate when a complete answer has no usage', () => {
    const tap = new UsageTap({ stripUsage: false });
    pass(tap, [Buffer.from('{"text":"hello"}')], JSON_TYPE);
    expect(tap.measure(() => 12)).toEqual({ usage: { input: 12, cachedInput: 0, output: 0 }, estimated: true });
  });
});

describe('an answer that never came', () => {
  it('charges nothing', () => {
    expect(new UsageTap({ stripUsage: false }).measure(() => 50)).toBeUndefined();
  });
});
