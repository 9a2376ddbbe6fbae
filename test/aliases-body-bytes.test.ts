// A request whose model is an alias reaches the upstream with the bytes the client sent, the value
// of the top-level `model` alone replaced: whatever the spacing, the escapes, a nested `model`,
// plain or streamed, parsed whole or read in one pass, JSON or a multipart form.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RecordedRequest } from '../src/dev/fake-upstream.js';
import { withModel } from '../src/relay/model-sent.js';
import { type RelayFixture, cutEvery, startRelay } from './helpers/relay-fixture.js';

const POOL_KEY = 'sk-pool-alias-bytes-1';
const TARGET = 'gpt-4o-2024-11-20';

let relay: RelayFixture;

beforeAll(async () => {
  relay = await startRelay(POOL_KEY, { keys: [POOL_KEY] }, { aliases: { fast: TARGET, 'wh-alias': 'whisper-1' } });
});
afterAll(() => relay.close());
beforeEach(() => relay.fake.reset());

async function post(path: string, body: string | Buffer, contentType = 'application/json'): Promise<{ status: number; text: string }> {
  const res = await fetch(`${relay.gateway.baseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${relay.userKey}`, 'content-type': contentType },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  return { status: res.status, text: await res.text() };
}

function only(path: string): RecordedRequest {
  const seen = relay.fake.requests.filter((r) => r.path === path);
  expect(seen).toHaveLength(1);
  return seen[0] as RecordedRequest;
}

/** The client's bytes with the one `from` span (the model's value as written) in place of `to`. */
function replaced(body: string, from: string, to: string): Buffer {
  expect(body.split(from)).toHaveLength(2);
  return Buffer.from(body.replace(from, to), 'utf8');
}

describe('a JSON body', () => {
  it('is sent with only the model value replaced (plain)', async () => {
    const body = '{"model":"fast","messages":[{"role":"user","content":"Hi"}],"max_tokens":10}';
    const answer = await post('/chat/completions', body);
    expect(answer.status).toBe(200);
    const seen = only('/v1/chat/completions');
    expect(seen.body.equals(replaced(body, '"fast"', `"${TARGET}"`))).toBe(true);
    expect(seen.headers['content-length']).toBe(String(seen.body.length));
    // The answer is not rewritten: it names the model the upstream ran.
    expect(JSON.parse(answer.text).model).toBe(TARGET);
  });

  it('is sent with only the model value replaced (streamed)', async () => {
    // include_usage set by the client: the gateway has nothing of its own to add (include-usage.ts).
    const body = '{\n  "stream": true,\n  "stream_options": {"include_usage": true},\n  "model" :\t"fast" ,\n  "messages": [{"role": "user", "content": "Hi"}]\n}';
    const answer = await post('/chat/completions', body);
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('data: [DONE]');
    expect(only('/v1/chat/completions').body.equals(replaced(body, '"fast"', `"${TARGET}"`))).toBe(true);
  });

  it('keeps a nested "model", unusual spacing and unicode escapes as they were', async () => {
    // The key and the value written with escapes; a `model` inside a message; text in other scripts.
    const body =
      ' {  "messages" : [ {"role":"user","content":"caf\\u00e9 \\"model\\": \\"fast\\" ☕","model":"fast"} ] ,\r\n' +
      '"mod\\u0065l"   :   "f\\u0061st"  , "metadata":{"model":"fast"},"max_tokens" : 5 }  ';
    const answer = await post('/chat/completions', body);
    expect(answer.status).toBe(200);
    expect(only('/v1/chat/completions').body.equals(replaced(body, '"f\\u0061st"', `"${TARGET}"`))).toBe(true);
  });

  it('inserts the usage option and replaces the model, nothing else, when a stream does not ask for usage', async () => {
    const body = '{"model":"fast","stream":true,"messages":[{"role":"user","content":"Hi"}]}';
    const answer = await post('/chat/completions', body);
    expect(answer.status).toBe(200);
    const expected = `{"stream_options":{"include_usage":true},${body.slice(1).replace('"fast"', `"${TARGET}"`)}`;
    expect(only('/v1/chat/completions').body.toString('utf8')).toBe(expected);
  });

  it('refuses a duplicate top-level "model" and sends nothing', async () => {
    const answer = await post('/chat/completions', '{"model":"fast","messages":[],"model":"gpt-4o"}');
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text).error).toMatchObject({ type: 'invalid_request_error', param: 'model' });
    expect(relay.fake.requests).toHaveLength(0);
  });

  it('leaves a model that is no alias byte for byte', async () => {
    const body = '{ "model" : "gpt-4o-mini" , "messages":[{"role":"user","content":"Hi"}]}';
    expect((await post('/chat/completions', body)).status).toBe(200);
    expect(only('/v1/chat/completions').body.equals(Buffer.from(body))).toBe(true);
  });

  it('is replaced in a body too large to parse whole, read in one pass', async () => {
    const long = 'x'.repeat(1_200_000);
    const body = `{"messages":[{"role":"user","content":"${long}"}],"model":"fast","stream":true,"stream_options":{"include_usage":false}}`;
    const answer = await post('/chat/completions', body);
    expect(answer.status).toBe(200);
    // include-usage.ts writes its member again in place, after the model moved it.
    const expected = replaced(body, '"fast"', `"${TARGET}"`).toString('utf8').replace('{"include_usage":false}', '{"include_usage":true}');
    const seen = only('/v1/chat/completions');
    expect(seen.body.length).toBe(Buffer.byteLength(expected));
    expect(seen.body.toString('utf8') === expected).toBe(true);
  });
});

describe('a multipart form', () => {
  it('is sent with only the model field replaced, and its Content-Length follows', async () => {
    const boundary = 'alias-form-boundary';
    const audio = Buffer.from([0x52, 0x49, 0x46, 0x46, 0x00, 0xff, 0x7f, 0x80]);
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwh-alias\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`;
    const tail = `\r\n--${boundary}--\r\n`;
    const body = Buffer.concat([Buffer.from(head), audio, Buffer.from(tail)]);
    const answer = await post('/audio/transcriptions', body, `multipart/form-data; boundary=${boundary}`);
    expect(answer.status).toBe(200);
    const seen = only('/v1/audio/transcriptions');
    const expected = Buffer.concat([Buffer.from(head.replace('\r\n\r\nwh-alias\r\n', '\r\n\r\nwhisper-1\r\n')), audio, Buffer.from(tail)]);
    expect(seen.body.equals(expected)).toBe(true);
    expect(seen.headers['content-length']).toBe(String(expected.length));
  });
});

describe('a streamed body cut anywhere', () => {
  it('has the model span replaced whichever chunks it falls across', async () => {
    const body = Buffer.from('--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwh-alias\r\n--b--\r\n');
    const start = body.indexOf('wh-alias');
    const expected = Buffer.from(body.toString('latin1').replace('wh-alias', 'whisper-1'), 'latin1');
    for (const size of [1, 2, 3, 7, 50, body.length]) {
      const sent = withModel(
        {
          kind: 'stream',
          stream: Readable.from(cutEvery(body, size)),
          contentLength: body.length,
          facts: { model: 'wh-alias', form: { fields: new Map(), complete: true, bytes: body.length, modelSpan: [start, start + 8] } },
        },
        'whisper-1',
      );
      if (sent.kind !== 'stream') throw new Error('not a stream');
      const chunks: Buffer[] = [];
      for await (const chunk of sent.stream) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(expected), `chunks of ${size}`).toBe(true);
      expect(sent.contentLength).toBe(expected.length);
    }
  });
});
