// A JSON body too large to parse (past 1 MB) is read in one pass without a tree
// (src/relay/json-digest.ts); the gateway must decide on it as it would on the parsed body: the
// same top-level settings, the same object ids, a prompt estimate never below the parsed one and
// the same output bound, and the same refusals of what is not JSON.
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../src/errors.js';
import { matchOperation } from '../src/operations/match.js';
import { idsInBody } from '../src/pool/objects.js';
import { effectiveModel } from '../src/quota/bounds.js';
import { estimateRequest } from '../src/quota/estimate.js';
import { factsOf } from '../src/relay/body.js';
import { TOP_FIELD_BYTES, digestJson } from '../src/relay/json-digest.js';
import { estimateAt } from './helpers/estimate.js';

const DEFAULT_MAX = 4096;

const BODIES: Array<[string, Record<string, unknown>]> = [
  [
    '/chat/completions',
    {
      model: 'ft:gpt-4o-mini-2024-07-18:org:suffix:abc123',
      n: 3,
      stream: true,
      stream_options: { include_usage: false },
      user: 'end-user-1',
      store: true,
      max_completion_tokens: 100,
      messages: [
        { role: 'system', content: 'Be brief, "quoted" and\nescaped: \u00e9\u4e2d' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is in this image and this file?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'high' } },
            { type: 'file', file: { file_id: 'file-abc' } },
          ],
        },
      ],
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { file_id: { type: 'string', maximum: 1e21 } } } } }],
      metadata: { file_id: 'file-hidden' },
    },
  ],
  [
    '/responses',
    {
      model: 'gpt-4.1',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi' }, { type: 'input_image', image_url: 'https://example.com/a.png' }] }],
      instructions: 'Answer in French.',
      conversation: { id: 'conv_1' },
      previous_response_id: 'resp_9',
      tools: [{ type: 'file_search', vector_store_ids: ['vs_1', 'vs_2', 'not-an-id'] }],
      text: { format: { type: 'json_schema', name: 's', schema: { type: 'object', properties: { a: { type: 'number' } } } } },
      max_output_tokens: 50,
    },
  ],
  ['/completions', { model: 'gpt-3.5-turbo-instruct', prompt: ['one', 'two', 'three'], suffix: 'end', best_of: 2, n: 2 }],
  ['/completions', { model: 'gpt-3.5-turbo-instruct', prompt: [1, 2, 3], max_tokens: 7 }],
  ['/embeddings', { model: 'text-embedding-3-small', input: [[1, 2], [3, 4]] }],
  ['/embeddings', { model: 'text-embedding-3-small', input: 'one string' }],
  ['/images/generations', { model: 'dall-e-3', prompt: 'a cat', n: 2 }],
  ['/audio/speech', { model: 'tts-1', input: 'Say it', instructions: 'Slowly', voice: { id: 'voice_1' } }],
  ['/evals', { name: 'e', data_source_config: { type: 'custom' }, data_source: { type: 'jsonl', source: { type: 'file_id', id: 'file-eval' } } }],
  ['/chat/completions', { model: 'gpt-4o-mini', messages: null, tools: null, n: null }],
];

describe('a body read without a tree', () => {
  it.each(BODIES)('POST %s gives what the parsed body gives', async (route, json) => {
    const digest = await digestJson(Buffer.from(JSON.stringify(json, null, 2)));
    const operation = matchOperation('POST', `/v1${route}`);
    const facts = factsOf(digest.top);
    expect(facts).toEqual(factsOf(json));
    for (const field of ['stream_options', 'store', 'user', 'n', 'best_of']) expect(digest.top[field]).toEqual(json[field]);
    expect(new Set(digest.ids)).toEqual(new Set(idsInBody(json)));

    const read = estimateRequest(operation.cost, effectiveModel(operation, facts.model), digest.top, facts, DEFAULT_MAX, digest.sizes);
    const parsed = estimateAt(route, json, DEFAULT_MAX);
    expect(read.maxOutputTokens).toBe(parsed.maxOutputTokens);
    expect(read.metered).toBe(parsed.metered);
    expect(read.promptTokens).toBeGreaterThanOrEqual(parsed.promptTokens);
  });

  it('counts an image as one, not by its bytes of base64', async () => {
    const json = { model: 'gpt-4o', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(100_000)}` } }] }] };
    const digest = await digestJson(Buffer.from(JSON.stringify(json)));
    const read = estimateRequest(matchOperation('POST', '/v1/chat/completions').cost, 'gpt-4o', digest.top, {}, DEFAULT_MAX, digest.sizes);
    expect(read.promptTokens).toBe(estimateAt('/chat/completions', json, DEFAULT_MAX).promptTokens);
  });

  it('finds ids wherever idsInBody does, and none inside opaque fields', async () => {
    const json = {
      model: 'gpt-4o-mini',
      attachments: [{ file_id: 'file-1', tools: [{ type: 'file_search' }] }],
      tool_resources: { code_interpreter: { file_ids: ['file-2', 'file-3'] }, file_search: { vector_store_ids: ['vs_4'] } },
      nested: [[{ thread_id: 'thread_5' }]],
      deep: [['file-not-direct']],
      metadata: { file_id: 'file-6', inner: { conversation: { id: 'conv_7' } } },
      parameters: { type: 'file_id', id: 'file-8' },
      video: { id: 'video_9' },
    };
    const digest = await digestJson(Buffer.from(JSON.stringify(json)));
    expect(digest.ids).toEqual(['file-1', 'file-2', 'file-3', 'vs_4', 'thread_5', 'video_9']);
    expect(new Set(digest.ids)).toEqual(new Set(idsInBody(json)));
  });
});

async function refusal(text: string): Promise<{ code: string; message: string; param: string | null } | undefined> {
  try {
    await digestJson(Buffer.from(text));
    return undefined;
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return { code: err.code, message: err.message, param: err.param ?? null };
  }
}

describe('what is not JSON', () => {
  it.each([
    ['{"a":1,}', 'unexpected "}" at byte 7.'],
    ['{"a":01}', 'unexpected "1" at byte 6.'],
    ['[1 2]', 'unexpected "2" at byte 3.'],
    ['{"a":tru}', 'unexpected "t" at byte 5.'],
    ['{"a":1}x', 'unexpected "x" at byte 7.'],
    ['[1.]', 'unexpected "1" at byte 1.'],
    ['{"a":"x', 'it ends early.'],
    ['{"a":nul', 'it ends early.'],
    ['  ', 'it ends early.'],
    ['{"__proto__":{"admin":true}}', 'Object contains forbidden prototype property'],
    ['{"constructor":{"prototype":{}}}', 'Object contains forbidden prototype property'],
  ])('%s is refused with 400 invalid_json', async (text, reason) => {
    expect(await refusal(text)).toEqual({ code: 'invalid_json', message: `The request body is not valid JSON: ${reason}`, param: null });
  });

  it.each(['[]', '{}', '"x"', '-0.5e+3', 'null', ' [ 1 , true , false , {"a" : [ ] } ] ', '{"constructor":{"name":"x"}}', '{"s":"\\"\\\\"}'])(
    '%s is JSON',
    async (text) => {
      expect(await refusal(text)).toBeUndefined();
    },
  );

  it('a top-level setting past 64 KB is refused on its own param', async () => {
    const user = 'u'.repeat(TOP_FIELD_BYTES);
    expect(await refusal(JSON.stringify({ model: 'gpt-4o-mini', user }))).toEqual({
      code: 'invalid_request',
      message: '`user` takes more than 65536 bytes; in a request body this large the gateway reads it on its own, and bounds it.',
      param: 'user',
    });
  });
});
