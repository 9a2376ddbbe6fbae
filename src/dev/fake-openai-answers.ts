// The default answers of the fake upstream: short, deterministic imitations of OpenAI's shapes
// (spec/openai/openapi.yaml), enough for the gateway to find models, streams and usage in them.
// Token counts are a pure function of the request so that tests can predict what gets charged.

import { createHash, randomBytes } from 'node:crypto';
import { mediaAnswer } from './fake-media-answers.js';
import { matchOperation } from '../operations/match.js';
import type { FakeResponse, RecordedRequest } from './fake-upstream.js';

/** The assistant text of every default answer; one SSE delta per word. */
export const FAKE_TEXT = 'Hello from the fake upstream.';
const WORDS = FAKE_TEXT.split(' ').map((w, i) => (i === 0 ? w : ` ${w}`));
/** completion_tokens / output_tokens of every default answer. */
export const FAKE_COMPLETION_TOKENS = WORDS.length;
export const EMBEDDING_DIMENSIONS = 8;
const DEFAULT_MODEL = 'gpt-4o-mini';

/** Fixed, plausible rate-limit headers that only the default answers carry. */
export const RATE_LIMIT_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-ratelimit-limit-requests': '10000',
  'x-ratelimit-remaining-requests': '9999',
  'x-ratelimit-reset-requests': '6ms',
  'x-ratelimit-limit-tokens': '2000000',
  'x-ratelimit-remaining-tokens': '1999950',
  'x-ratelimit-reset-tokens': '1ms',
});

export const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };

/** The ~4 KB "audio" of POST /v1/audio/speech, sent as four 1 KB chunks. */
export const FAKE_SPEECH: Buffer = Buffer.alloc(4096, 0);
for (let i = 0; i < FAKE_SPEECH.length; i++) FAKE_SPEECH[i] = (i * 31 + 7) & 0xff;
FAKE_SPEECH.write('ID3', 0, 'latin1');
const SPEECH_CHUNKS = [0, 1, 2, 3].map((i) => FAKE_SPEECH.subarray(i * 1024, (i + 1) * 1024));

const MODELS_BODY = JSON.stringify({
  object: 'list',
  data: ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1', 'text-embedding-3-small', 'tts-1', 'whisper-1'].map((id) => ({
    id,
    object: 'model',
    created: 1715367049,
    owned_by: 'system',
  })),
});

// Ids: a per-process random part and a counter, cheaper than random bytes per request.
const ID_PREFIX = randomBytes(8).toString('hex');
let idSeq = 0;
export function fakeId(prefix: string): string {
  return `${prefix}${ID_PREFIX}${(++idSeq).toString(16).padStart(8, '0')}`;
}

/** Builds SSE chunk strings: `event: <name>\n` when opts.event names one, `data: <json>\n\n`, optional `[DONE]`. */
export function sseEvents(
  events: Array<object | string>,
  opts?: { done?: boolean; event?: (e: object) => string | undefined },
): string[] {
  const out = events.map((e) => {
    if (typeof e === 'string') return `data: ${e}\n\n`;
    const name = opts?.event?.(e);
    const data = `data: ${JSON.stringify(e)}\n\n`;
    return name === undefined ? data : `event: ${name}\n${data}`;
  });
  if (opts?.done) out.push('data: [DONE]\n\n');
  return out;
}

/** Characters of the text a request sends: strings, and the `content` / `text` fields of objects, recursively. */
export function textChars(v: unknown): number {
  if (typeof v === 'string') return v.length;
  if (typeof v === 'number') return 4; // a token id (embeddings/completions accept token arrays)
  if (Array.isArray(v)) {
    let n = 0;
    for (const x of v) n += textChars(x);
    return n;
  }
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return textChars(o['content']) + textChars(o['text']);
  }
  return 0;
}

/** The deterministic prompt token count: ceil(characters / 4). */
export function promptTokens(input: unknown): number {
  return Math.ceil(textChars(input) / 4);
}

/** The embedding of the input at `index`; every value is exact in float32, so base64 and float answers agree. */
export function fakeEmbedding(index: number): number[] {
  const v: number[] = [];
  for (let j = 0; j < EMBEDDING_DIMENSIONS; j++) v.push(((index + 1) * (j - 3.5)) / 64);
  return v;
}

/** The bytes of GET /v1/files/{id}/content: the SHA-256 of the id, repeated to 1 KB. */
export function fakeFileContent(id: string): Buffer {
  const digest = createHash('sha256').update(id).digest();
  return Buffer.concat(Array.from({ length: 32 }, () => digest));
}

type Json = Record<string, unknown>;
const asObject = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const now = (): number => Math.floor(Date.now() / 1000);

/** The part of the prompt read from the cache (fake-prompt-cache.ts): ceil(characters / 4) as for the
 * whole prompt, never more than it. Undefined: the fake keeps no prompt cache, and says nothing of one. */
function cachedTokens(cachedChars: number | undefined, prompt: number): number | undefined {
  return cachedChars === undefined ? undefined : Math.min(prompt, Math.floor(cachedChars / 4));
}

/** The default answer for a request that no handler answered; `bodyLength` counts bytes even when not
 * kept; `cachedChars`: the prompt's characters found in the key's prompt cache, when the fake keeps one. */
export function defaultAnswer(req: RecordedRequest, bodyLength: number, cachedChars?: number): FakeResponse {
  const { method, path } = req;
  if (method === 'POST') {
    const media = mediaAnswer(req, bodyLength);
    if (media) return media;
    switch (path) {
      case '/v1/chat/completions':
        return chatCompletion(asObject(req.json), cachedChars);
      case '/v1/completions':
        return completion(asObject(req.json), cachedChars);
      case '/v1/embeddings':
        return embeddings(asObject(req.json));
      case '/v1/responses':
        return response(asObject(req.json), cachedChars);
      case '/v1/audio/speech':
        return { headers: { 'content-type': 'audio/mpeg' }, chunks: SPEECH_CHUNKS };
      case '/v1/files':
        return { body: fileObject(req.body, bodyLength) };
      case '/v1/fine_tuning/jobs':
        return { body: fineTuningJob(fakeId('ftjob-'), asObject(req.json)) };
      case '/v1/chatkit/sessions':
        return { body: chatkitSession(asObject(req.json)) };
    }
  } else if (method === 'DELETE') {
    const model = /^\/v1\/models\/([^/]+)$/.exec(path)?.[1];
    if (model !== undefined) return { body: { id: decodeURIComponent(model), object: 'model', deleted: true } };
  } else if (method === 'GET') {
    if (path === '/v1/models') return { headers: { 'content-type': 'application/json' }, body: MODELS_BODY };
    const job = /^\/v1\/fine_tuning\/jobs\/(ftjob-[^/]+)$/.exec(path)?.[1];
    if (job !== undefined) return { body: fineTuningJob(job, {}) };
    const m = /^\/v1\/files\/([^/]+)\/content$/.exec(path);
    if (m?.[1] !== undefined) {
      return { headers: { 'content-type': 'application/octet-stream' }, body: fakeFileContent(m[1]) };
    }
  }
  // A route OpenAI does not have gets OpenAI's own 404, so a test (or a gateway) that calls a
  // wrong path finds out, as it would against api.openai.com.
  if (!path.startsWith('/v1/') || matchOperation(method, path).template === undefined) return invalidUrl(method, path);
  // An operation of the API that has no imitation above: the request, told back.
  return { body: { object: 'fake.echo', method, path, query: req.query, bodyBytes: bodyLength } };
}

/** OpenAI's answer to a method and path it has no route for. */
export function invalidUrl(method: string, path: string): FakeResponse {
  return { status: 404, body: { error: { message: `Invalid URL (${method} ${path})`, type: 'invalid_request_error', param: null, code: null } } };
}

function modelOf(json: Json): string {
  return typeof json['model'] === 'string' ? json['model'] : DEFAULT_MODEL;
}

function includeUsage(json: Json): boolean {
  return asObject(json['stream_options'])['include_usage'] === true;
}

/** Chat and completions usage, with `prompt_tokens_details` when the fake keeps a prompt cache. */
function promptUsage(prompt: number, cachedChars: number | undefined): object {
  const usage = { prompt_tokens: prompt, completion_tokens: FAKE_COMPLETION_TOKENS, total_tokens: prompt + FAKE_COMPLETION_TOKENS };
  const cached = cachedTokens(cachedChars, prompt);
  return cached === undefined ? usage : { ...usage, prompt_tokens_details: { cached_tokens: cached } };
}

function chatCompletion(json: Json, cachedChars?: number): FakeResponse {
  const base = { id: fakeId('chatcmpl-'), created: now(), model: modelOf(json), system_fingerprint: 'fp_fake' };
  const usage = promptUsage(promptTokens(json['messages']), cachedChars);
  if (json['stream'] !== true) {
    const message = { role: 'assistant', content: FAKE_TEXT, refusal: null, annotations: [] };
    return {
      body: { ...base, object: 'chat.completion', choices: [{ index: 0, message, logprobs: null, finish_reason: 'stop' }], usage },
    };
  }
  const withUsage = includeUsage(json);
  const chunk = (delta: object, finish: string | null): object => ({
    ...base,
    object: 'chat.completion.chunk',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(withUsage ? { usage: null } : {}),
  });
  const events: object[] = [chunk({ role: 'assistant', content: '', refusal: null }, null)];
  for (const w of WORDS) events.push(chunk({ content: w }, null));
  events.push(chunk({}, 'stop'));
  if (withUsage) events.push({ ...base, object: 'chat.completion.chunk', choices: [], usage });
  return { headers: SSE_HEADERS, chunks: sseEvents(events, { done: true }) };
}

function completion(json: Json, cachedChars?: number): FakeResponse {
  const base = { id: fakeId('cmpl-'), object: 'text_completion', created: now(), model: modelOf(json) };
  const usage = promptUsage(promptTokens(json['prompt']), cachedChars);
  const choice = (text: string, finish: string | null): object => ({ text, index: 0, logprobs: null, finish_reason: finish });
  if (json['stream'] !== true) return { body: { ...base, choices: [choice(FAKE_TEXT, 'stop')], usage } };
  const withUsage = includeUsage(json);
  const nullUsage = withUsage ? { usage: null } : {};
  const events: object[] = WORDS.map((w) => ({ ...base, choices: [choice(w, null)], ...nullUsage }));
  events.push({ ...base, choices: [choice('', 'stop')], ...nullUsage });
  if (withUsage) events.push({ ...base, choices: [], usage });
  return { headers: SSE_HEADERS, chunks: sseEvents(events, { done: true }) };
}

function embeddings(json: Json): FakeResponse {
  const input = json['input'];
  // A string or a token array is one input; an array of strings or of token arrays is several.
  const count = Array.isArray(input) && input.length > 0 && typeof input[0] !== 'number' ? input.length : 1;
  const base64 = json['encoding_format'] === 'base64';
  const data = [];
  for (let i = 0; i < count; i++) {
    const vector = fakeEmbedding(i);
    const embedding = base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
    data.push({ object: 'embedding', index: i, embedding });
  }
  const prompt = promptTokens(input);
  return { body: { object: 'list', data, model: modelOf(json), usage: { prompt_tokens: prompt, total_tokens: prompt } } };
}

export function response(json: Json, cachedChars?: number): FakeResponse {
  const input = promptTokens(json['input']) + promptTokens(json['instructions']);
  const usage = {
    input_tokens: input,
    input_tokens_details: { cached_tokens: cachedTokens(cachedChars, input) ?? 0 },
    output_tokens: FAKE_COMPLETION_TOKENS,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: input + FAKE_COMPLETION_TOKENS,
  };
  const itemId = fakeId('msg_');
  const part = { type: 'output_text', text: FAKE_TEXT, annotations: [] };
  const item = { id: itemId, type: 'message', status: 'completed', role: 'assistant', content: [part] };
  const base = { id: fakeId('resp_'), object: 'response', created_at: now(), model: modelOf(json), error: null };
  const done = { ...base, status: 'completed', output: [item], usage };
  if (json['stream'] !== true) return { body: done };

  const pending = { ...base, status: 'in_progress', output: [], usage: null };
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  const events: Json[] = [
    { type: 'response.created', response: pending },
    { type: 'response.in_progress', response: pending },
    { type: 'response.output_item.added', output_index: 0, item: { ...item, status: 'in_progress', content: [] } },
    { type: 'response.content_part.added', ...at, part: { ...part, text: '' } },
    ...WORDS.map((delta) => ({ type: 'response.output_text.delta', ...at, delta })),
    { type: 'response.output_text.done', ...at, text: FAKE_TEXT },
    { type: 'response.content_part.done', ...at, part },
    { type: 'response.output_item.done', output_index: 0, item },
    { type: 'response.completed', response: done },
  ];
  events.forEach((e, i) => (e['sequence_number'] = i));
  return { headers: SSE_HEADERS, chunks: sseEvents(events, { event: (e) => String((e as Json)['type']) }) };
}

export function fileObject(body: Buffer, bodyLength: number): { id: string; [field: string]: unknown } {
  // Best effort: the part headers sit near either end of the multipart body (the SDK puts `purpose`
  // wherever the caller did), so only the first and last 64 KB are searched.
  const span = 64 * 1024;
  const text =
    body.length <= 2 * span
      ? body.toString('latin1')
      : body.toString('latin1', 0, span) + body.toString('latin1', body.length - span);
  const filename = /name="file"; filename="([^"]*)"/.exec(text)?.[1] ?? 'upload';
  const purpose = /name="purpose"\r\n(?:[^\r\n]+\r\n)*\r\n([^\r\n]*)/.exec(text)?.[1] ?? 'user_data';
  return {
    id: fakeId('file-'),
    object: 'file',
    bytes: bodyLength,
    created_at: now(),
    filename,
    purpose,
    status: 'processed',
  };
}

/** The model a fake fine-tuning job makes: a pure function of the job id. */
export function fakeFineTunedModel(jobId: string): string {
  return `ft:${DEFAULT_MODEL}-2024-07-18:fake-org::${jobId.slice('ftjob-'.length)}`;
}

/**
 * A fine-tuning job: POST answers it as it starts (no model yet); every GET finds it finished,
 * its model made (there is no clock to wait for in the fake).
 */
function fineTuningJob(id: string, request: Json): object {
  const created = request['training_file'] !== undefined;
  return {
    id,
    object: 'fine_tuning.job',
    model: typeof request['model'] === 'string' ? request['model'] : `${DEFAULT_MODEL}-2024-07-18`,
    created_at: now(),
    finished_at: created ? null : now(),
    fine_tuned_model: created ? null : fakeFineTunedModel(id),
    organization_id: 'org-fake',
    result_files: [],
    status: created ? 'validating_files' : 'succeeded',
    training_file: typeof request['training_file'] === 'string' ? request['training_file'] : 'file-fake',
    validation_file: null,
    trained_tokens: created ? null : 1000,
    error: null,
    seed: 0,
  };
}

/** A ChatKit session for the request's `user` (threads are made later by the ChatKit front end). */
function chatkitSession(request: Json): object {
  return {
    id: fakeId('cksess_'),
    object: 'chatkit.session',
    expires_at: now() + 600,
    client_secret: fakeId('ek_fake_'),
    workflow: asObject(request['workflow']),
    user: typeof request['user'] === 'string' ? request['user'] : '',
    rate_limits: { max_requests_per_1_minute: 10 },
    max_requests_per_1_minute: 10,
    status: 'active',
    chatkit_configuration: { automatic_thread_titling: { enabled: true }, file_upload: { enabled: false }, history: { enabled: true } },
  };
}
