// CPU of the usage tap alone, no network: a recorded OpenAI-style chat stream (with
// stream_options.include_usage: `"usage":null` in every chunk, then the usage chunk, then [DONE])
// fed through UsageTap many times, once as the client asked for usage itself (stripUsage false:
// chunks pass through) and once as the gateway asked for it on the client's behalf (stripUsage
// true: the usage chunk and the `,"usage":null` fields are taken out). Three chunkings: one event
// per chunk (what upstreams write), several events per chunk, and random splits.
//
//   node bench/stream-tap.js [--streams N] [--rounds N] [--seed N]
//
// Prints CPU microseconds per stream for each mode and chunking, and stripped / plain: medians over
// rounds that alternate the two modes. Builds nothing: run `npx tsc -p tsconfig.build.json` first.
import { parseArgs } from 'node:util';
import { UsageTap } from '../dist/relay/usage-tap.js';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '4000' },
    rounds: { type: 'string', default: '7' },
    seed: { type: 'string', default: '7' },
  },
});
const STREAMS = Number(values.streams);
const ROUNDS = Number(values.rounds);

const SSE = { 'content-type': 'text/event-stream; charset=utf-8' };
const base = { id: 'chatcmpl-BnK8yVq0R2sx7c3JfLq9a1uTzWd4E', object: 'chat.completion.chunk', created: 1_750_000_000, model: 'gpt-4o-mini-2024-07-18', service_tier: 'default', system_fingerprint: 'fp_34a54ae93c' };
const WORDS = ['Hello', '!', ' Here', ' is', ' a', ' short', ' answer', ' about', ' the', ' "quick"', ' brown', ' fox', ' — ', 'it', ' jumps', ' over', ' the', ' lazy', ' dog', ' 🦊', '.', ' Grüße', '.'];

/** Events as OpenAI writes them with include_usage, and the same stream as the client should get it. */
function recorded(withUsage, words = WORDS) {
  const usageNull = withUsage ? { usage: null } : {};
  const chunk = (delta, finish) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...usageNull });
  const events = [chunk({ role: 'assistant', content: '', refusal: null }, null)];
  for (const word of words) events.push(chunk({ content: word }, null));
  events.push(chunk({}, 'stop'));
  if (withUsage) {
    const usage = { prompt_tokens: 31, completion_tokens: words.length, total_tokens: 31 + words.length, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } };
    events.push({ ...base, choices: [], usage });
  }
  return [...events.map((e) => `data: ${JSON.stringify(e)}\n\n`), 'data: [DONE]\n\n'].map((e) => Buffer.from(e));
}

const EVENTS = recorded(true);
const STREAM = Buffer.concat(EVENTS);
const STRIPPED = Buffer.concat(recorded(false));
// A long answer too: past the bytes the tap leaves unread before reading them (8 KB).
const LONG_WORDS = Array.from({ length: 10 }, () => WORDS).flat();
const LONG = recorded(true, LONG_WORDS);
const LONG_STRIPPED = Buffer.concat(recorded(false, LONG_WORDS));

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomSplits(bytes, random) {
  const out = [];
  for (let at = 0; at < bytes.length; ) {
    const size = 1 + Math.floor(random() * 400);
    out.push(bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

function severalPerChunk(events, n) {
  const out = [];
  for (let i = 0; i < events.length; i += n) out.push(Buffer.concat(events.slice(i, i + n)));
  return out;
}

// Random splits: 16 different ones, taken in turn, so that no single split is what is measured.
const random = mulberry32(Number(values.seed));
const CHUNKINGS = [
  ['one event per chunk', [EVENTS]],
  ['3 events per chunk', [severalPerChunk(EVENTS, 3)]],
  ['random splits (1-400 B)', Array.from({ length: 16 }, () => randomSplits(STREAM, random))],
  [`${LONG.length} events, one per chunk`, [LONG], Buffer.concat(LONG), LONG_STRIPPED],
];

function relay(chunks, stripUsage) {
  const tap = new UsageTap({ stripUsage });
  tap.start(200, SSE);
  const out = [];
  for (const chunk of chunks) out.push(tap.chunk(chunk));
  tap.end(true);
  tap.measure(() => 0);
  return out;
}

// What is measured is checked first: the bytes the client gets, and the usage found.
for (const [name, variants, whole = STREAM, stripped = STRIPPED] of CHUNKINGS) {
  for (const chunks of variants) {
    for (const [strip, expected] of [[false, whole], [true, stripped]]) {
      if (!Buffer.concat(relay(chunks, strip)).equals(expected)) throw new Error(`${name}, stripUsage ${strip}: not the expected bytes`);
    }
  }
}

function cpuPerStream(variants, stripUsage) {
  const before = process.cpuUsage();
  for (let i = 0; i < STREAMS; i++) relay(variants[i % variants.length], stripUsage);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / STREAMS;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

process.stdout.write(`usage tap, ${EVENTS.length} events (${STREAM.length} bytes) unless said, ${STREAMS} streams per measurement, ${ROUNDS} rounds, Node ${process.version}\n`);
for (const [name, variants] of CHUNKINGS) {
  // Warm: both paths compiled before anything is measured.
  cpuPerStream(variants, false);
  cpuPerStream(variants, true);
  const plain = [];
  const stripped = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternating which goes first, so that neither always runs in the other's wake.
    if (round % 2) {
      stripped.push(cpuPerStream(variants, true));
      plain.push(cpuPerStream(variants, false));
    } else {
      plain.push(cpuPerStream(variants, false));
      stripped.push(cpuPerStream(variants, true));
    }
  }
  const ratio = median(stripped.map((x, i) => x / plain[i]));
  process.stdout.write(
    `${name.padEnd(28)} plain ${median(plain).toFixed(2).padStart(6)} µs/stream, stripped ${median(stripped).toFixed(2).padStart(6)} µs/stream, stripped / plain ${ratio.toFixed(2)}\n`,
  );
}
