// The official `openai` SDK pointed at the gateway works as it does against OpenAI: JSON, SSE,
// base64 embeddings, multipart uploads, binary downloads, beta headers and error classes.
import OpenAI, { BadRequestError, toFile } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FAKE_SPEECH, FAKE_TEXT, fakeEmbedding, fakeFileContent } from '../src/dev/fake-openai-answers.js';
import type { RecordedRequest } from '../src/dev/fake-upstream.js';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';

const POOL_KEY = 'sk-pool-sdk-client-1';

let relay: RelayFixture;
let client: OpenAI;
/** The headers the SDK itself put on its last request, as handed to fetch. */
let sdkHeaders = new Headers();

beforeAll(async () => {
  // The fake accepts only the pool key, so every default answer below proves the key swap.
  relay = await startRelay(POOL_KEY, { keys: [POOL_KEY] });
  client = new OpenAI({
    baseURL: relay.gateway.baseUrl,
    apiKey: relay.userKey,
    maxRetries: 0,
    fetch: (url, init) => {
      sdkHeaders = new Headers(init?.headers);
      return fetch(url, init);
    },
  });
});
afterAll(() => relay.close());
beforeEach(() => relay.fake.reset());

function only(path: string): RecordedRequest {
  const seen = relay.fake.requests.filter((r) => r.path === path);
  expect(seen).toHaveLength(1);
  return seen[0]!;
}

describe('chat completions', () => {
  it('answers a plain request', async () => {
    const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });
    expect(completion.choices[0]?.message.content).toBe(FAKE_TEXT);
    expect(completion.usage).toEqual({ prompt_tokens: 1, completion_tokens: 5, total_tokens: 6 });
    expect(only('/v1/chat/completions').headers.authorization).toBe(`Bearer ${POOL_KEY}`);
  });

  it('streams deltas that add up to the text', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(FAKE_TEXT);
  });
});

describe('embeddings', () => {
  it('uses base64 on the wire and decodes the floats', async () => {
    const result = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
    expect(only('/v1/embeddings').json).toMatchObject({ encoding_format: 'base64' });
    expect(result.data).toHaveLength(1);
    expect(result.data[0]?.embedding).toEqual(fakeEmbedding(0));
  });
});

describe('files', () => {
  it('uploads a file and downloads its content', async () => {
    const lines = Buffer.from('{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{}}\n');
    const file = await client.files.create({ file: await toFile(lines, 'a.jsonl'), purpose: 'batch' });
    expect(file).toMatchObject({ object: 'file', filename: 'a.jsonl', purpose: 'batch' });
    const upload = only('/v1/files');
    expect(upload.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(upload.body.includes(lines)).toBe(true);

    // The fake keeps a batch file's bytes (src/dev/fake-jobs.ts), as OpenAI does.
    const content = await client.files.content(file.id);
    expect(Buffer.from(await content.arrayBuffer())).toEqual(lines);
    expect(only(`/v1/files/${file.id}/content`).headers.accept).toBe('application/binary');
  });
});

describe('audio', () => {
  it('returns the speech bytes unchanged', async () => {
    const speech = await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'Hello.' });
    expect(speech.headers.get('content-type')).toBe('audio/mpeg');
    expect(Buffer.from(await speech.arrayBuffer())).toEqual(FAKE_SPEECH);
  });

  it('uploads audio for a transcription', async () => {
    const audio = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 17) & 0xff));
    const transcription = await client.audio.transcriptions.create({ file: await toFile(audio, 'a.mp3'), model: 'whisper-1' });
    expect(transcription.text).toBe(FAKE_TEXT);
    const upload = only('/v1/audio/transcriptions');
    expect(upload.body.includes(audio)).toBe(true);
    expect(upload.body.toString('latin1')).toContain('name="model"\r\n\r\nwhisper-1\r\n');
  });
});

describe('responses', () => {
  it('streams events that end with response.completed', async () => {
    const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'Hi', stream: true });
    const types: string[] = [];
    let text = '';
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
    }
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    expect(text).toBe(FAKE_TEXT);
  });
});

describe('SDK headers', () => {
  it('reach the upstream unchanged: OpenAI-Beta and X-Stainless-*', async () => {
    await client.vectorStores.create({ name: 'docs' });
    const seen = only('/v1/vector_stores').headers;
    expect(sdkHeaders.get('openai-beta')).toBe('assistants=v2');
    const sent: Record<string, string> = {};
    sdkHeaders.forEach((value, name) => {
      if (name === 'openai-beta' || name.startsWith('x-stainless-')) sent[name] = value;
    });
    expect(Object.keys(sent).filter((n) => n.startsWith('x-stainless-')).length).toBeGreaterThanOrEqual(6);
    for (const [name, value] of Object.entries(sent)) expect(seen[name], name).toBe(value);
    expect(seen['user-agent']).toBe(sdkHeaders.get('user-agent'));
  });
});

describe('upstream errors', () => {
  it('reach the SDK as BadRequestError with the upstream message and request id', async () => {
    const error = { message: "Invalid value: 'gpt-nope'.", type: 'invalid_request_error', param: 'model', code: 'model_not_found' };
    relay.fake.handle(() => ({ status: 400, headers: { 'x-request-id': 'req_upstream_400' }, body: { error } }));
    const failure = await client.chat.completions
      .create({ model: 'gpt-nope', messages: [{ role: 'user', content: 'Hi' }] })
      .then(() => undefined, (err: unknown) => err);
    expect(failure).toBeInstanceOf(BadRequestError);
    const bad = failure as BadRequestError;
    expect(bad.status).toBe(400);
    expect(bad.error).toEqual(error);
    expect(bad.message).toBe(`400 ${error.message}`);
    expect(bad.requestID).toBe('req_upstream_400');
  });
});
