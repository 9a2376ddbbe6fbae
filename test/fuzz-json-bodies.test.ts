// Fuzzing of JSON bodies on the metered JSON routes (charged by tokens, images, seconds or a flat
// price): plausible bodies with fields of random types and values, random JSON of any shape,
// nesting up to and past the 64 levels the gateway reads
// (src/relay/json-shape.ts), long strings, and texts that are not quite JSON (cut short, trailing
// bytes, a BOM, a key twice, NUL), under several content types. Each answer keeps the properties
// of every answer (helpers/fuzz.ts), and the user's ledger holds nothing reserved afterwards, alone
// and with requests in flight side by side.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FUZZ_TIMEOUT, type FuzzGateway, Tally, checkAlive, checkLedger, checkReply, fuzz, httpRequest, rawExchange, startFuzzGateway } from './helpers/fuzz.js';

let fx: FuzzGateway;

beforeAll(async () => {
  fx = await startFuzzGateway();
});

afterAll(async () => {
  await fx?.close();
});

const ROUTES: Array<{ path: string; base: Record<string, unknown> }> = [
  { path: '/v1/chat/completions', base: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 20 } },
  { path: '/v1/completions', base: { model: 'gpt-3.5-turbo-instruct', prompt: 'Say hello', max_tokens: 20 } },
  { path: '/v1/responses', base: { model: 'gpt-4o-mini', input: 'Say hello', max_output_tokens: 20 } },
  { path: '/v1/responses/compact', base: { model: 'gpt-4o-mini', input: 'Say hello' } },
  { path: '/v1/embeddings', base: { model: 'text-embedding-3-small', input: 'Say hello' } },
  { path: '/v1/images/generations', base: { model: 'dall-e-2', prompt: 'a cat', n: 1, size: '256x256' } },
  { path: '/v1/audio/speech', base: { model: 'tts-1', input: 'Say hello', voice: 'alloy' } },
  { path: '/v1/moderations', base: { model: 'omni-moderation-latest', input: 'Say hello' } },
  { path: '/v1/threads/runs', base: { assistant_id: 'asst_abc', max_prompt_tokens: 100, max_completion_tokens: 20 } },
  { path: '/v1/videos', base: { model: 'sora-2', prompt: 'a cat', seconds: '4' } },
  { path: '/v1/containers', base: { name: 'fuzz' } },
];

const FIELDS = [
  'model', 'messages', 'input', 'prompt', 'max_tokens', 'max_output_tokens', 'max_completion_tokens', 'n', 'stream', 'stream_options', 'size',
  'quality', 'voice', 'response_format', 'tools', 'user', 'prompt_cache_key', 'background', 'store', 'previous_response_id', 'instructions',
  'dimensions', 'encoding_format', 'stream_format', 'reasoning', 'metadata', 'best_of', 'echo', 'thread', 'assistant_id', 'seconds', 'memory_limit',
];

const special = fc.constantFrom<unknown>(
  'gpt-4o-mini', 'gpt-4o', 'dall-e-3', 'gpt-image-1', '', 'x'.repeat(300), 'ft:gpt-4o:org::abc', '../models', 'gpt-4o\u0000', 'GPT-4O-MINI',
  -1, 0, 1, 1.5, 1e9, 1e308, -0, 2 ** 53 + 1, true, false, null, [], {}, 'true', '10',
  { include_usage: true }, { include_usage: false }, { include_usage: 'yes' },
  [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], [{ role: 'user' }], [{ role: 'user', content: 5 }], ['hi', 'there'], [1, 2, 3], [[1, 2], [3]],
);

const fieldValue = fc.oneof({ weight: 3, arbitrary: special }, { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) });

/** Nested `depth` levels deep: arrays or objects, with a leaf at the bottom. */
const nested = fc.tuple(fc.integer({ min: 1, max: 80 }), fc.boolean()).map(([depth, objects]) => {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = objects ? { a: value } : [value];
  return value;
});

const longText = fc.integer({ min: 10_000, max: 1_500_000 }).map((n) => 'word '.repeat(Math.ceil(n / 5)));

const body = fc.oneof(
  // A plausible body with some fields replaced or added.
  { weight: 5, arbitrary: fc.tuple(fc.dictionary(fc.constantFrom(...FIELDS), fieldValue, { maxKeys: 4 }), fc.boolean()).map(([over, stream]) => ({ over, stream })) },
  // Any JSON at all.
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((any) => ({ any })) },
  // A deep value under a field of the body.
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...FIELDS, 'extra'), nested).map(([field, value]) => ({ over: { [field]: value }, stream: false })) },
  // A long prompt.
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('messages', 'input', 'prompt'), longText).map(([field, text]) => ({ over: { [field]: field === 'messages' ? [{ role: 'user', content: text }] : text }, stream: false })) },
);

// How the JSON text is written: as is, pretty, or damaged.
const spelling = fc.constantFrom('plain', 'plain', 'plain', 'pretty', 'bom', 'cut', 'trailing', 'twice', 'nul', 'empty', 'latin1');
const contentType = fc.constantFrom('application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'Application/JSON', 'text/plain', '', 'application/x-www-form-urlencoded');

function text(value: unknown, how: string): Buffer {
  const json = JSON.stringify(value) ?? 'null';
  switch (how) {
    case 'pretty':
      return Buffer.from(JSON.stringify(value, null, 2) ?? 'null');
    case 'bom':
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]);
    case 'cut':
      return Buffer.from(json.slice(0, Math.max(1, Math.floor(json.length / 2))));
    case 'trailing':
      return Buffer.from(`${json} {"more":1}`);
    case 'twice':
      // The model named twice: the gateway must not decide on one name and send the other.
      return Buffer.from(json.startsWith('{"') ? `{"model":"gpt-4o",${json.slice(1)}` : json);
    case 'nul':
      return Buffer.from(`${json}\u0000`);
    case 'empty':
      return Buffer.alloc(0);
    case 'latin1':
      return Buffer.from(json.replace(/}$/, ',"x":"\u00e9\u00ff"}'), 'latin1');
    default:
      return Buffer.from(json);
  }
}

type Body = { over: Record<string, unknown>; stream: boolean } | { any: unknown };

function build(route: (typeof ROUTES)[number], b: Body): unknown {
  if ('any' in b) return b.any;
  return { ...route.base, ...(b.stream ? { stream: true } : {}), ...b.over };
}

async function send(route: (typeof ROUTES)[number], b: Body, how: string, type: string, tally: Tally, alongside = false): Promise<{ who: 'gateway' | 'upstream'; named: boolean; status: number }> {
  const bytes = text(build(route, b), how);
  const headers: Array<[string, string]> = [['host', 'gateway.test'], ['authorization', `Bearer ${fx.userKey}`]];
  if (type) headers.push(['content-type', type]);
  const label = `POST ${route.path} (${how}, ${type || 'no type'}) ${JSON.stringify(bytes.toString('latin1').slice(0, 400))}`;
  const before = fx.fake.requests.length;
  const reply = await rawExchange(fx.gateway.port, httpRequest('POST', route.path, headers, bytes));
  const who = await checkReply(fx, label, reply, before, { alongside });
  tally.add(reply, who);
  // An answer the fake's handler made names its request (x-request-id of its own).
  return { who, named: reply.headers['x-request-id'] !== reply.headers['x-keyrelay-request-id'], status: reply.status };
}

const single = new Tally();
const together = new Tally();

describe('JSON bodies on metered routes, fuzzed', () => {
  it('one at a time: the properties of every answer, nothing left reserved', async () => {
    await fuzz(
      fc.asyncProperty(fc.constantFrom(...ROUTES), body, spelling, contentType, async (route, b, how, type) => {
        await send(route, b, how, type, single);
        await checkLedger(fx, `POST ${route.path}`);
      }),
      1200,
    );
    await checkAlive(fx);
    console.log(`fuzz-json-bodies, one at a time: ${single}`);
  }, FUZZ_TIMEOUT);

  it('several side by side: the same, and the ledger whole once they are done', async () => {
    const request = fc.tuple(fc.constantFrom(...ROUTES), body, spelling, contentType);
    await fuzz(
      fc.asyncProperty(fc.array(request, { minLength: 2, maxLength: 6 }), async (requests) => {
        const before = fx.fake.requests.length;
        const answers = await Promise.all(requests.map(([route, b, how, type]) => send(route, b, how, type, together, true)));
        // One upstream request per relayed request (one key, nothing retried): none for a refusal.
        const sent = fx.fake.requests.length - before;
        const named = answers.filter((a) => a.who === 'upstream' && a.named).length;
        const relayed = answers.filter((a) => a.who === 'upstream' || a.status >= 500).length;
        expect(sent, 'upstream requests of requests side by side').toBeGreaterThanOrEqual(named);
        expect(sent, 'upstream requests of requests side by side').toBeLessThanOrEqual(relayed);
        await checkLedger(fx, 'requests side by side');
      }),
      200,
    );
    await checkAlive(fx);
    console.log(`fuzz-json-bodies, side by side: ${together}`);
  }, FUZZ_TIMEOUT);
});
