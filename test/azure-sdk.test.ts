// The official openai SDK, pointed at keyrelay, reaches Azure OpenAI upstreams of both forms: the
// v1 API (deployment in the body's model) and the classic API (deployment in the path, api-version
// in the query), with the pool key as `api-key`. Azure's content filter chunks reach the client,
// and the user is charged what the answers' usage says.
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROMPT_FILTER_RESULTS } from '../src/dev/fake-azure.js';
import { FAKE_COMPLETION_TOKENS, FAKE_TEXT, fakeEmbedding } from '../src/dev/fake-openai-answers.js';
import { FAKE_TRANSCRIPT } from '../src/dev/fake-media-answers.js';
import type { FakeUpstream, RecordedRequest } from '../src/dev/fake-upstream.js';
import { API_VERSION, AZURE_KEYS, type AzureFixture, OPENAI_KEY, startAzure } from './helpers/azure-fixture.js';
import { until, usageOf } from './helpers/quota-fixture.js';

// Requests that name no model (files) go to the first upstream: one gateway has the v1 API first,
// the other the classic one.
let fx: AzureFixture;
let fxClassic: AzureFixture;
beforeAll(async () => {
  [fx, fxClassic] = await Promise.all([startAzure({ first: 'v1' }), startAzure({ first: 'classic' })]);
});
afterAll(() => Promise.all([fx.close(), fxClassic.close()]));

const client = (key: string, on = fx) => new OpenAI({ baseURL: on.gateway.baseUrl, apiKey: key, maxRetries: 0 });

/** The user's day once their requests have settled. */
async function charged(user: string, on = fx): Promise<{ requests: number; tokens: number; usdMicros: number }> {
  await until(async () => (await usageOf(on.gateway, user)).concurrent.inFlight === 0, 'the requests to settle');
  return (await usageOf(on.gateway, user)).day;
}

function lastRequest(fake: FakeUpstream, path: string): RecordedRequest {
  const seen = fake.requests.filter((r) => r.path === path);
  expect(seen.length).toBeGreaterThan(0);
  return seen[seen.length - 1]!;
}

/** What every request to an Azure resource must carry: the pool key as api-key, no Authorization. */
function expectAzureKey(req: RecordedRequest, keys: readonly string[]): void {
  expect(keys).toContain(req.headers['api-key']);
  expect(req.headers.authorization).toBeUndefined();
}

const MESSAGES = [{ role: 'user' as const, content: 'Hi' }];
// The fake counts a prompt's tokens by its characters: "Hi" is one.
const PROMPT_TOKENS = 1;

const forms = [
  {
    name: 'the v1 API',
    fx: () => fx,
    fake: () => fx.v1,
    keys: AZURE_KEYS.v1,
    chat: 'gpt-4o',
    embedding: 'text-embedding-3-small',
    image: 'dall-e-3',
    transcribe: 'whisper-1',
    /** Where a request of `path` (below /v1) went, and with which model in its body. */
    at: (path: string) => ({ path: `/openai/v1${path}`, query: '' }),
    deployment: { 'gpt-4o': 'prod-gpt4o', 'text-embedding-3-small': 'emb-small', 'dall-e-3': 'images', 'whisper-1': 'speech-in' } as Record<string, string>,
  },
  {
    name: 'the classic API',
    fx: () => fxClassic,
    fake: () => fxClassic.classic,
    keys: AZURE_KEYS.classic,
    chat: 'gpt-4o-mini',
    embedding: 'text-embedding-3-large',
    image: 'dall-e-2',
    transcribe: 'gpt-4o-mini-transcribe',
    at: (path: string, deployment?: string) => ({
      path: deployment === undefined ? `/openai${path}` : `/openai/deployments/${deployment}${path}`,
      query: `api-version=${API_VERSION}`,
    }),
    deployment: { 'gpt-4o-mini': 'mini', 'text-embedding-3-large': 'emb-large', 'dall-e-2': 'images-2', 'gpt-4o-mini-transcribe': 'transcribe' } as Record<string, string>,
  },
];

describe.each(forms)('Azure OpenAI, $name', (form) => {
  const v1 = form.name === 'the v1 API';
  const sent = (path: string, model?: string) => form.at(path, model === undefined ? undefined : form.deployment[model]);

  it('answers a chat completion, with the deployment in the body or the path, and charges its usage', async () => {
    const user = `chat-${v1 ? 'v1' : 'classic'}`;
    const openai = client(await form.fx().user(user), form.fx());
    const completion = await openai.chat.completions.create({ model: form.chat, messages: MESSAGES, max_tokens: 50 });
    expect(completion.choices[0]?.message.content).toBe(FAKE_TEXT);
    // Azure's own fields reach the client.
    expect((completion as unknown as { prompt_filter_results: unknown }).prompt_filter_results).toEqual(PROMPT_FILTER_RESULTS);
    const req = lastRequest(form.fake(), sent('/chat/completions', form.chat).path);
    expect(req.query).toBe(sent('/chat/completions', form.chat).query);
    expectAzureKey(req, form.keys);
    // The body is the client's, but for the model's value on the v1 API.
    const body = JSON.stringify({ model: form.chat, messages: MESSAGES, max_tokens: 50 });
    expect(req.body.toString()).toBe(v1 ? body.replace('"gpt-4o"', '"prod-gpt4o"') : body);
    expect(await charged(user, form.fx())).toMatchObject({ requests: 1, tokens: PROMPT_TOKENS + FAKE_COMPLETION_TOKENS, usdMicros: PROMPT_TOKENS + 2 * FAKE_COMPLETION_TOKENS });
  });

  it('streams a chat completion with Azure\'s content filter chunks, and charges the usage the gateway asked for', async () => {
    const user = `stream-${v1 ? 'v1' : 'classic'}`;
    const openai = client(await form.fx().user(user), form.fx());
    const stream = await openai.chat.completions.create({ model: form.chat, messages: MESSAGES, stream: true });
    const chunks: Array<Record<string, unknown>> = [];
    for await (const chunk of stream) chunks.push(chunk as unknown as Record<string, unknown>);
    // The empty first chunk with the prompt's filter results, as Azure sent it.
    expect(chunks[0]).toEqual({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: PROMPT_FILTER_RESULTS });
    const text = chunks.map((c) => ((c.choices as Array<{ delta?: { content?: string } }>)[0]?.delta?.content ?? '')).join('');
    expect(text).toBe(FAKE_TEXT);
    expect(chunks.filter((c) => (c.choices as unknown[]).length > 0).every((c) => (c.choices as Array<Record<string, unknown>>)[0]!.content_filter_results !== undefined)).toBe(true);
    // The chunk of no choices Azure sends before the usage reaches the client; the usage chunk the
    // gateway asked for on the client's behalf does not, nor `"usage": null` on the others.
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect('usage' in last).toBe(false);
    expect(chunks.some((c) => 'usage' in c)).toBe(false);
    const req = lastRequest(form.fake(), sent('/chat/completions', form.chat).path);
    expectAzureKey(req, form.keys);
    expect((req.json as { stream_options: unknown }).stream_options).toEqual({ include_usage: true });
    expect(await charged(user, form.fx())).toMatchObject({ requests: 1, tokens: PROMPT_TOKENS + FAKE_COMPLETION_TOKENS, usdMicros: PROMPT_TOKENS + 2 * FAKE_COMPLETION_TOKENS });
  });

  it('streams with usage asked for by the client: the usage chunk reaches it', async () => {
    const user = `stream-usage-${v1 ? 'v1' : 'classic'}`;
    const openai = client(await form.fx().user(user), form.fx());
    const stream = await openai.chat.completions.create({ model: form.chat, messages: MESSAGES, stream: true, stream_options: { include_usage: true } });
    let usage: unknown;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage).toEqual({ prompt_tokens: PROMPT_TOKENS, completion_tokens: FAKE_COMPLETION_TOKENS, total_tokens: PROMPT_TOKENS + FAKE_COMPLETION_TOKENS });
    expect(await charged(user, form.fx())).toMatchObject({ requests: 1, tokens: PROMPT_TOKENS + FAKE_COMPLETION_TOKENS });
  });

  it('makes embeddings', async () => {
    const user = `emb-${v1 ? 'v1' : 'classic'}`;
    const openai = client(await form.fx().user(user), form.fx());
    const answer = await openai.embeddings.create({ model: form.embedding, input: 'Hi', encoding_format: 'float' });
    expect(answer.data[0]?.embedding).toEqual(fakeEmbedding(0));
    expect(answer.model).toBe(form.embedding);
    const req = lastRequest(form.fake(), sent('/embeddings', form.embedding).path);
    expect(req.query).toBe(sent('/embeddings', form.embedding).query);
    expectAzureKey(req, form.keys);
    expect(await charged(user, form.fx())).toMatchObject({ requests: 1, tokens: 1, usdMicros: 1 });
  });

  it('makes an image', async () => {
    const openai = client(await form.fx().user(`image-${v1 ? 'v1' : 'classic'}`), form.fx());
    const answer = await openai.images.generate({ model: form.image, prompt: 'A cat', size: '1024x1024' });
    expect(answer.data?.length).toBe(1);
    const req = lastRequest(form.fake(), sent('/images/generations', form.image).path);
    expect(req.query).toBe(sent('/images/generations', form.image).query);
    expectAzureKey(req, form.keys);
    expect((req.json as { model: string }).model).toBe(v1 ? form.deployment[form.image] : form.image);
  });

  it('transcribes a multipart upload with the model before the file', async () => {
    const openai = client(await form.fx().user(`audio-${v1 ? 'v1' : 'classic'}`), form.fx());
    const audio = Buffer.alloc(64_000, 1);
    const answer = await openai.audio.transcriptions.create({ model: form.transcribe, file: await toFile(audio, 'hello.wav') });
    expect(answer.text).toBe(FAKE_TRANSCRIPT);
    const req = lastRequest(form.fake(), sent('/audio/transcriptions', form.transcribe).path);
    expect(req.query).toBe(sent('/audio/transcriptions', form.transcribe).query);
    expectAzureKey(req, form.keys);
    const body = req.body.toString('latin1');
    expect(body).toContain(`name="model"\r\n\r\n${v1 ? form.deployment[form.transcribe] : form.transcribe}\r\n`);
    // The file itself arrived whole, and the length said so.
    expect(body).toContain(audio.toString('latin1'));
    expect(Number(req.headers['content-length'])).toBe(req.body.length);
  });

  it('uploads, lists and reads files at the resource', async () => {
    const openai = client(await form.fx().user(`files-${v1 ? 'v1' : 'classic'}`), form.fx());
    const created = await openai.files.create({ file: await toFile(Buffer.from('{"a":1}\n'), 'data.jsonl'), purpose: 'batch' });
    const upload = lastRequest(form.fake(), sent('/files').path);
    expect(upload.query).toBe(sent('/files').query);
    expectAzureKey(upload, form.keys);
    const content = await openai.files.content(created.id);
    expect(await content.text()).toBe('{"a":1}\n');
    const download = lastRequest(form.fake(), sent(`/files/${created.id}/content`).path);
    expect(download.query).toBe(sent('/files').query);
    expectAzureKey(download, form.keys);
  });
});

describe('Azure OpenAI, forms whose model comes after the file', () => {
  it('the v1 API: the model field is renamed as the form streams through', async () => {
    const openai = client(await fx.user('late-model-v1'));
    const answer = await openai.audio.transcriptions.create({ file: await toFile(Buffer.alloc(32_000, 2), 'late.wav'), model: 'whisper-1' });
    expect(answer.text).toBe(FAKE_TRANSCRIPT);
    const req = lastRequest(fx.v1, '/openai/v1/audio/transcriptions');
    expect(req.body.toString('latin1')).toContain('name="model"\r\n\r\nspeech-in\r\n');
    expectAzureKey(req, AZURE_KEYS.v1);
  });

  it('the classic API: refused with 400 naming `model`, before any upstream call, at no charge', async () => {
    const openai = client(await fxClassic.user('late-model-classic'), fxClassic);
    fxClassic.reset();
    const refused = await openai.audio.transcriptions
      .create({ file: await toFile(Buffer.alloc(32_000, 2), 'late.wav'), model: 'gpt-4o-mini-transcribe' })
      .catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect((refused as InstanceType<typeof OpenAI.BadRequestError>).error).toEqual({
      message: expect.stringContaining('picks the deployment by `model`'),
      type: 'invalid_request_error',
      param: 'model',
      code: 'invalid_request',
    });
    expect(fxClassic.classic.requests).toHaveLength(0);
    expect(await charged('late-model-classic', fxClassic)).toMatchObject({ requests: 0, tokens: 0, usdMicros: 0 });
  });
});

describe('OpenAI and Azure keys in one gateway', () => {
  it('routes by model: Azure deployments to Azure with api-key, other models to OpenAI with a bearer token', async () => {
    const openai = client(await fx.user('mixed'));
    fx.reset();
    const azure = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
    const classic = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES });
    const plain = await openai.chat.completions.create({ model: 'gpt-4.1', messages: MESSAGES });
    expect([azure, classic, plain].map((c) => c.choices[0]?.message.content)).toEqual([FAKE_TEXT, FAKE_TEXT, FAKE_TEXT]);
    expect(fx.openai.requests).toHaveLength(1);
    const toOpenAI = fx.openai.requests[0]!;
    expect(toOpenAI.path).toBe('/v1/chat/completions');
    expect(toOpenAI.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    expect(toOpenAI.headers['api-key']).toBeUndefined();
    expect((toOpenAI.json as { model: string }).model).toBe('gpt-4.1');
    expect((plain as unknown as Record<string, unknown>).prompt_filter_results).toBeUndefined();
    const usage = await fx.gateway.admin('GET', '/usage?user=mixed&groupBy=model');
    expect(usage.status).toBe(200);
    const models = (usage.json.data as Array<{ model: string; tokens: number }>).map((row) => row.model).sort();
    expect(models).toEqual(['gpt-4.1', 'gpt-4o', 'gpt-4o-mini']);
  });
});
