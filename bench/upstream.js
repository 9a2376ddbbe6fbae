// The benchmark's upstream: the project's fake OpenAI upstream (record: false), with four answers
// scripted through its handle() API, chosen by the request's `metadata.bench`. The answers are
// built once, so the fake spends as little as it can per request: it is target (A), the floor.
//
//   json    a chat.completion of about 500 bytes
//   stream  a streamed chat answer of 20 SSE events (the last one `[DONE]`), written back to back;
//           as OpenAI does, the usage chunk and `"usage":null` in every other chunk only when the
//           request sets stream_options.include_usage (19 events without)
//   paced   the same 20 events, 20 ms apart (time to first byte)
//   hold    an event every 500 ms for ten minutes (open streams, for memory per stream)
//   delayed the json answer after 20 ms (bench/overload.js: an upstream that takes time)
//
// With --flaky-key KEY (bench/soak.js), chat completions sent with that key fail some of the time,
// so that the gateway fails over to its other key: 10% answer 429 (retry-after 1 s), 15% answer
// 500. The faults served are counted; a forked upstream answers {faults} to the message 'faults'.
//
// node bench/upstream.js [--port N] [--flaky-key KEY]; when forked, it tells the parent its port
// over IPC.
import { startFakeUpstream } from '../dist/dev/fake-upstream.js';

const MODEL = 'gpt-4o-mini';
const CREATED = 1_750_000_000;
const JSON_BYTES = 500;
const STREAM_EVENTS = 20;

/** A chat.completion padded with words to exactly JSON_BYTES. */
function chatCompletion() {
  const answer = (content) =>
    JSON.stringify({
      id: 'chatcmpl-bench0000000000000000000000',
      object: 'chat.completion',
      created: CREATED,
      model: MODEL,
      system_fingerprint: 'fp_bench',
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 24, completion_tokens: 48, total_tokens: 72 },
    });
  const room = JSON_BYTES - Buffer.byteLength(answer(''));
  const words = 'The quick brown fox jumps over the lazy dog. '.repeat(20);
  return Buffer.from(answer(words.slice(0, room)));
}

/** 20 SSE events as OpenAI sends them with stream_options.include_usage: role, deltas, stop, usage,
 * [DONE]; without it, 19: no usage chunk and no `"usage":null` in the others. */
function streamChunks(includeUsage = true) {
  const base = { id: 'chatcmpl-bench0000000000000000000000', object: 'chat.completion.chunk', created: CREATED, model: MODEL, system_fingerprint: 'fp_bench' };
  const chunk = (delta, finish) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(includeUsage ? { usage: null } : {}) });
  const events = [chunk({ role: 'assistant', content: '', refusal: null }, null)];
  const deltas = STREAM_EVENTS - 4; // role, stop, usage and [DONE] are the other four
  for (let i = 0; i < deltas; i++) events.push(chunk({ content: ` word${i}` }, null));
  events.push(chunk({}, 'stop'));
  if (includeUsage) events.push({ ...base, choices: [], usage: { prompt_tokens: 24, completion_tokens: deltas, total_tokens: 24 + deltas } });
  const lines = events.map((e) => `data: ${JSON.stringify(e)}\n\n`);
  lines.push('data: [DONE]\n\n');
  return lines.map((l) => Buffer.from(l));
}

const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };
const CHUNKS = streamChunks();
const PLAIN_CHUNKS = streamChunks(false);
const HOLD_CHUNKS = Array.from({ length: 1200 }, (_, i) => CHUNKS[Math.min(i, 1)]);

/** @type {Record<string, import('../dist/dev/fake-upstream.js').FakeResponse>} */
const ANSWERS = {
  json: { headers: { 'content-type': 'application/json' }, body: chatCompletion() },
  stream: { headers: SSE_HEADERS, chunks: CHUNKS },
  'stream-plain': { headers: SSE_HEADERS, chunks: PLAIN_CHUNKS },
  paced: { headers: SSE_HEADERS, chunks: CHUNKS, chunkIntervalMs: 20 },
  hold: { headers: SSE_HEADERS, chunks: HOLD_CHUNKS, chunkIntervalMs: 500 },
  delayed: { headers: { 'content-type': 'application/json' }, body: chatCompletion(), headersDelayMs: 20 },
};

const args = process.argv.slice(2);
const portArg = args.indexOf('--port');
const port = portArg === -1 ? 0 : Number(args[portArg + 1]);
const flakyArg = args.indexOf('--flaky-key');
const flakyKey = flakyArg === -1 ? undefined : args[flakyArg + 1];
const faults = { 429: 0, 500: 0 };

const upstream = await startFakeUpstream({ host: '127.0.0.1', port, record: false });
upstream.handle((req) => {
  const json = /** @type {{metadata?: {bench?: string}, stream_options?: {include_usage?: boolean}} | undefined} */ (req.json);
  const which = json?.metadata?.bench;
  if (which === undefined) return undefined;
  // Streams carry usage only when asked for, whichever workload they belong to.
  if (which === 'stream' || which === 'stream-plain') return ANSWERS[json?.stream_options?.include_usage === true ? 'stream' : 'stream-plain'];
  return ANSWERS[which];
});
if (flakyKey !== undefined) {
  // Registered last, so tried first (handlers are tried newest first).
  upstream.handle((req) => {
    if (req.path !== '/v1/chat/completions' || req.headers.authorization !== `Bearer ${flakyKey}`) return undefined;
    const draw = Math.random();
    if (draw < 0.1) {
      faults[429]++;
      const body = { error: { message: 'Rate limit reached (bench fault)', type: 'requests', param: null, code: 'rate_limit_exceeded' } };
      return { status: 429, headers: { 'retry-after': '1' }, body };
    }
    if (draw < 0.25) {
      faults[500]++;
      return { status: 500, body: { error: { message: 'The server had an error (bench fault)', type: 'server_error', param: null, code: null } } };
    }
    return undefined;
  });
}

const stop = () => void upstream.close().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
if (process.send) {
  // Forked by the harness: its end is ours too, even when it could not say so (SIGKILL).
  process.once('disconnect', stop);
  process.on('message', (m) => m === 'faults' && process.send?.({ faults }));
  process.send({ ready: true, port: upstream.port });
} else {
  process.stdout.write(`bench upstream listening on ${upstream.baseUrl}\n`);
}
