// Fuzzing of SSE framing from the upstream: the fake upstream is scripted to stream a chat
// completion cut at random bytes, with LF, CRLF or CR line ends, comments, giant lines, text with
// invalid UTF-8 and with `,"usage":null` inside it. What the client gets is byte for byte what the
// upstream sent when the client asked for usage itself; when it did not (the gateway asked on its
// behalf: src/quota/include-usage.ts), exactly that less the usage chunk and the `"usage":null`
// OpenAI then adds to every other chunk (src/relay/usage-tap.ts). The usage the stream carries is
// what the user is charged. The same for a Responses stream, which the gateway never changes.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeResponse, RecordedRequest } from '../src/dev/fake-upstream.js';
import { FUZZ_TIMEOUT, type FuzzGateway, Tally, checkAlive, checkLedger, checkReply, fuzz, httpRequest, rawExchange, startFuzzGateway } from './helpers/fuzz.js';

let fx: FuzzGateway;
let script: FakeResponse | undefined;

beforeAll(async () => {
  fx = await startFuzzGateway();
  fx.fake.handle((req: RecordedRequest) => (req.path === '/v1/chat/completions' || req.path === '/v1/responses' ? script : undefined));
});

afterAll(async () => {
  await fx?.close();
});

// Raw bytes put in place of this marker in a delta's text: invalid or cut UTF-8.
const BAD = 'XBADX';
const BAD_BYTES = [Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xe2, 0x82]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xc0, 0xae])];

const text = fc.oneof(
  { weight: 5, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 10 }) },
  { weight: 1, arbitrary: fc.constantFrom(',"usage":null', '","usage":null}', 'data: {"usage":{}}', '\n\ndata: [DONE]\n\n', '"usage":{"prompt_tokens":1}', BAD) },
  // A giant line.
  { weight: 1, arbitrary: fc.integer({ min: 64 * 1024, max: 512 * 1024 }).map((n) => 'g'.repeat(n)) },
);

const stream = fc.record({
  deltas: fc.array(text, { maxLength: 6 }),
  eol: fc.constantFrom('\n', '\n', '\r\n', '\r'),
  // A comment line before the event of this index (past the end: none).
  comments: fc.array(fc.nat({ max: 9 }), { maxLength: 3 }),
  // An `event:` line on the chunks too.
  named: fc.nat({ max: 4 }).map((n) => n === 0),
  usage: fc.record({ prompt: fc.integer({ min: 0, max: 5_000 }), completion: fc.integer({ min: 0, max: 5_000 }) }),
  usageChunk: fc.nat({ max: 9 }).map((n) => n !== 0),
  done: fc.boolean(),
  badBytes: fc.nat({ max: BAD_BYTES.length - 1 }),
  cuts: fc.array(fc.nat(), { maxLength: 12 }),
  // The client asked for usage itself (the stream then reaches it unchanged).
  clientAsked: fc.boolean(),
});

type Stream = typeof stream extends fc.Arbitrary<infer T> ? T : never;

const BASE = { id: 'chatcmpl-fuzz', object: 'chat.completion.chunk', created: 1_760_000_000, model: 'gpt-4o-mini', system_fingerprint: 'fp_fuzz' };

/**
 * The stream as the upstream sends it (`withUsage`), and as the client gets it when the gateway
 * asked: without the `"usage":null`s, and without the usage chunk's data line and the blank line
 * ending it. An `event:` line before it stays (OpenAI's chat streams have none; the tap takes out
 * lines it has read whole, and an `event:` line comes before the data that tells what it names).
 */
function render(s: Stream, withUsage: boolean): Buffer {
  const chunk = (delta: object, finish: string | null): object => ({ ...BASE, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(withUsage ? { usage: null } : {}) });
  const events: Array<object | undefined> = [chunk({ role: 'assistant', content: '' }, null), ...s.deltas.map((t) => chunk({ content: t }, null)), chunk({}, 'stop')];
  const usage = { prompt_tokens: s.usage.prompt, completion_tokens: s.usage.completion, total_tokens: s.usage.prompt + s.usage.completion };
  if (s.usageChunk) events.push(withUsage ? { ...BASE, choices: [], usage } : undefined);
  const out: Buffer[] = [];
  events.forEach((event, i) => {
    if (s.comments.includes(i)) out.push(Buffer.from(`: keep-alive${s.eol}`));
    if (s.named) out.push(Buffer.from(`event: chunk${s.eol}`));
    if (event === undefined) return;
    const [before, ...after] = `data: ${JSON.stringify(event)}${s.eol}${s.eol}`.split(BAD);
    out.push(Buffer.from(before as string));
    for (const rest of after) out.push(BAD_BYTES[s.badBytes] as Buffer, Buffer.from(rest));
  });
  if (s.done) out.push(Buffer.from(`data: [DONE]${s.eol}${s.eol}`));
  return Buffer.concat(out);
}

/** A Responses stream (`event:` and `data:` lines), its usage in response.completed when `usageChunk`. */
function renderResponses(s: Stream): Buffer {
  const response = { id: 'resp_fuzz', object: 'response', model: 'gpt-4o-mini' };
  const usage = { input_tokens: s.usage.prompt, output_tokens: s.usage.completion, total_tokens: s.usage.prompt + s.usage.completion };
  const events: object[] = [
    { type: 'response.created', response: { ...response, status: 'in_progress' } },
    ...s.deltas.map((delta, i) => ({ type: 'response.output_text.delta', item_id: 'msg_fuzz', output_index: 0, content_index: 0, delta, sequence_number: i + 1 })),
    { type: 'response.completed', response: { ...response, status: 'completed', ...(s.usageChunk ? { usage } : {}) } },
  ];
  const out: Buffer[] = [];
  events.forEach((event, i) => {
    if (s.comments.includes(i)) out.push(Buffer.from(`: keep-alive${s.eol}`));
    const [before, ...after] = `event: ${(event as { type: string }).type}${s.eol}data: ${JSON.stringify(event)}${s.eol}${s.eol}`.split(BAD);
    out.push(Buffer.from(before as string));
    for (const rest of after) out.push(BAD_BYTES[s.badBytes] as Buffer, Buffer.from(rest));
  });
  return Buffer.concat(out);
}

function cut(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    if (c > from) pieces.push(bytes.subarray(from, c));
    from = c;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
}

const tally = new Tally();
const responsesTally = new Tally();

describe('SSE from the upstream, fuzzed', () => {
  it('reaches the client byte for byte (less the usage the gateway asked for), and the usage it carries is charged', async () => {
    await fuzz(
      fc.asyncProperty(stream, async (s) => {
        const sent = render(s, true);
        // The usage and its `"usage":null`s come only when asked for, by the client or by the gateway.
        const expected = s.clientAsked ? sent : render(s, false);
        script = { headers: { 'content-type': 'text/event-stream' }, chunks: cut(sent, s.cuts) };
        const request = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50, stream: true, ...(s.clientAsked ? { stream_options: { include_usage: true } } : {}) };
        const dayBefore = (await checkLedger(fx, 'before the stream')).day.tokens;
        const before = fx.fake.requests.length;
        const headers: Array<[string, string]> = [['host', 'gateway.test'], ['authorization', `Bearer ${fx.userKey}`], ['content-type', 'application/json']];
        const reply = await rawExchange(fx.gateway.port, httpRequest('POST', '/v1/chat/completions', headers, JSON.stringify(request)));
        const label = `stream ${JSON.stringify(sent.toString('latin1').replace(/g{32,}/g, (g) => `g…×${g.length}`).slice(0, 1500))} cut at ${JSON.stringify(s.cuts)}${s.clientAsked ? ', usage asked by the client' : ''}`;
        tally.add(reply, await checkReply(fx, label, reply, before));
        expect(reply.status, label).toBe(200);
        expect(fx.fake.requests.length - before, label).toBe(1);
        expect((fx.fake.requests[before]?.json as { stream_options?: unknown }).stream_options, `${label}: usage asked upstream`).toEqual({ include_usage: true });
        if (!reply.body.equals(expected)) {
          expect(reply.body.toString('latin1'), `${label}: the bytes the client got`).toBe(expected.toString('latin1'));
        }
        const day = (await checkLedger(fx, label)).day.tokens;
        if (s.usageChunk) expect(day - dayBefore, `${label}: tokens charged`).toBe(s.usage.prompt + s.usage.completion);
      }),
      250,
    );
    await checkAlive(fx);
    console.log(`fuzz-sse: ${tally}`);
  }, FUZZ_TIMEOUT);

  it('a Responses stream reaches the client byte for byte, and the usage of response.completed is charged', async () => {
    await fuzz(
      fc.asyncProperty(stream, async (s) => {
        const sent = renderResponses(s);
        script = { headers: { 'content-type': 'text/event-stream; charset=utf-8' }, chunks: cut(sent, s.cuts) };
        const dayBefore = (await checkLedger(fx, 'before the stream')).day.tokens;
        const before = fx.fake.requests.length;
        const headers: Array<[string, string]> = [['host', 'gateway.test'], ['authorization', `Bearer ${fx.userKey}`], ['content-type', 'application/json']];
        const request = JSON.stringify({ model: 'gpt-4o-mini', input: 'hi', max_output_tokens: 50, stream: true });
        const reply = await rawExchange(fx.gateway.port, httpRequest('POST', '/v1/responses', headers, request));
        const label = `responses stream ${JSON.stringify(sent.toString('latin1').replace(/g{32,}/g, (g) => `g…×${g.length}`).slice(0, 1500))} cut at ${JSON.stringify(s.cuts)}`;
        responsesTally.add(reply, await checkReply(fx, label, reply, before));
        expect(reply.status, label).toBe(200);
        if (!reply.body.equals(sent)) expect(reply.body.toString('latin1'), `${label}: the bytes the client got`).toBe(sent.toString('latin1'));
        const day = (await checkLedger(fx, label)).day.tokens;
        if (s.usageChunk) expect(day - dayBefore, `${label}: tokens charged`).toBe(s.usage.prompt + s.usage.completion);
      }),
      150,
    );
    await checkAlive(fx);
    console.log(`fuzz-sse, responses: ${responsesTally}`);
  }, FUZZ_TIMEOUT);
});
