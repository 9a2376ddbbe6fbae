// A user allowed only an alias tries to reach its target, or a dearer model, through the bytes of
// the body: a second `model` written another way, a body too large to parse whole, a form with two
// `model` fields or one after the file. And the byte rewrite must keep every other byte.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-attack7-alias-1';
const TARGET = 'gpt-4o-mini';

let relay: RelayFixture;
let aliasOnly: string;

beforeAll(async () => {
  relay = await startRelay(POOL_KEY, { keys: [POOL_KEY] }, { aliases: { fast: TARGET, 'wh-alias': 'whisper-1', 'é': TARGET, 'rt-fast': 'gpt-realtime', 'wh-é': 'whisper-1' } });
  aliasOnly = await relay.gateway.createUserKey('attack7-alias-only', { models: ['fast', 'wh-alias', 'é', 'rt-fast', 'wh-é'] });
  registerSecret(aliasOnly);
});
afterAll(() => relay.close());
beforeEach(() => relay.fake.reset());

async function post(path: string, body: string | Buffer, contentType = 'application/json', key = aliasOnly): Promise<{ status: number; json: any }> {
  const res = await fetch(`${relay.gateway.baseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': contentType },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

const sentModels = (): unknown[] => relay.fake.requests.map((r) => (r.json as { model?: unknown } | undefined)?.model);

describe('a JSON body that names the model twice', () => {
  for (const [name, body] of [
    ['escaped key after', '{"model":"fast","messages":[{"role":"user","content":"Hi"}],"mo\\u0064el":"gpt-4o"}'],
    ['escaped key before', '{"mo\\u0064el":"gpt-4o","model":"fast","messages":[{"role":"user","content":"Hi"}]}'],
    ['wholly escaped key', '{"model":"fast","\\u006d\\u006f\\u0064\\u0065\\u006c":"gpt-4o","messages":[]}'],
  ] as const) {
    it(`is refused with 400 before anything is sent (${name})`, async () => {
      const answer = await post('/chat/completions', body);
      expect(answer.status).toBe(400);
      expect(answer.json.error).toMatchObject({ type: 'invalid_request_error' });
      expect(relay.fake.requests).toHaveLength(0);
    });
  }

  it('is refused too in a body too large to parse whole, read in one pass', async () => {
    const filler = 'x'.repeat(1_200_000);
    for (const body of [
      `{"model":"fast","messages":[{"role":"user","content":"${filler}"}],"model":"gpt-4o"}`,
      `{"model":"fast","messages":[{"role":"user","content":"${filler}"}],"mo\\u0064el":"gpt-4o"}`,
    ]) {
      const answer = await post('/chat/completions', body);
      expect(answer.status).toBe(400);
      expect(relay.fake.requests).toHaveLength(0);
    }
  });
});

describe('the model value', () => {
  it('written with escapes, or in another case, is the name it decodes to, no other', async () => {
    // "f\u0061st" is "fast": allowed and aliased.
    const ok = await post('/chat/completions', '{"model":"f\\u0061st","messages":[{"role":"user","content":"Hi"}]}');
    expect(ok.status).toBe(200);
    // "FAST", "fast " and a decomposed "é" are other names: not aliases, not allowed.
    for (const model of ['FAST', 'fast ', 'e\u0301', 'fas\u200bt']) {
      const refused = await post('/chat/completions', JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }] }));
      expect(refused.status).toBe(403);
      expect(refused.json.error.code).toBe('model_not_allowed');
    }
    expect(sentModels()).toEqual([TARGET]);
  });

  it('replaced by a target of another length keeps multi-byte text and the rest of the body whole', async () => {
    const body = '{"model":"é","messages":[{"role":"user","content":"日本語 \\u00e9 \\ud83d\\ude00 😀"}],"metadata":{"model":"gpt-4o"}}';
    const answer = await post('/chat/completions', body);
    expect(answer.status).toBe(200);
    const seen = relay.fake.requests[0];
    expect(seen?.body.equals(Buffer.from(body.replace('"é"', `"${TARGET}"`), 'utf8'))).toBe(true);
    expect(seen?.headers['content-length']).toBe(String(seen?.body.length));
  });

  it('is never a JSON injection: a model that is not a string is refused', async () => {
    for (const model of [['fast'], { fast: 1 }, 1, null, true]) {
      const answer = await post('/chat/completions', JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }] }));
      expect(answer.status).toBe(400);
    }
    expect(relay.fake.requests).toHaveLength(0);
  });
});

function form(parts: Array<{ name: string; value: string; filename?: string }>): { body: Buffer; type: string } {
  const boundary = 'attack7boundary';
  const chunks = parts.map((p) =>
    p.filename === undefined
      ? `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"\r\n\r\n${p.value}\r\n`
      : `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"; filename="${p.filename}"\r\nContent-Type: audio/mpeg\r\n\r\n${p.value}\r\n`,
  );
  return { body: Buffer.from(`${chunks.join('')}--${boundary}--\r\n`), type: `multipart/form-data; boundary=${boundary}` };
}

describe('a multipart form', () => {
  it('with two model fields before the file is refused, nothing sent', async () => {
    const f = form([
      { name: 'model', value: 'wh-alias' },
      { name: 'model', value: 'gpt-4o-transcribe' },
      { name: 'file', value: 'ID3audio', filename: 'a.mp3' },
    ]);
    const answer = await post('/audio/transcriptions', f.body, f.type);
    expect(answer.status).toBe(400);
    expect(relay.fake.requests).toHaveLength(0);
  });

  it('with a second model after the file is refused for a user with a model list', async () => {
    const f = form([
      { name: 'model', value: 'wh-alias' },
      { name: 'file', value: 'ID3audio', filename: 'a.mp3' },
      { name: 'model', value: 'gpt-4o-transcribe' },
    ]);
    const answer = await post('/audio/transcriptions', f.body, f.type);
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    // Whatever reached the upstream, it never carried a model the user may not use.
    for (const r of relay.fake.requests) expect(r.body.includes('gpt-4o-transcribe')).toBe(false);
  });

  it('with the only model after the file is refused for a user with a model list', async () => {
    const f = form([
      { name: 'file', value: 'ID3audio', filename: 'a.mp3' },
      { name: 'model', value: 'gpt-4o-transcribe' },
    ]);
    const answer = await post('/audio/transcriptions', f.body, f.type);
    expect(answer.status).toBe(403);
    expect(answer.json.error.code).toBe('model_not_allowed');
    expect(relay.fake.requests).toHaveLength(0);
  });

  it('with the model as a file part named model is not taken as the alias', async () => {
    const f = form([
      { name: 'model', value: 'gpt-4o-transcribe', filename: 'model.txt' },
      { name: 'file', value: 'ID3audio', filename: 'a.mp3' },
    ]);
    const answer = await post('/audio/transcriptions', f.body, f.type);
    expect(answer.status).toBeGreaterThanOrEqual(400);
    for (const r of relay.fake.requests) expect(r.body.includes('gpt-4o-transcribe')).toBe(false);
  });
});

describe('a multipart form with a multi-byte alias', () => {
  it('is sent with the target in its place and a Content-Length that counts bytes', async () => {
    const f = form([
      { name: 'model', value: 'wh-é' },
      { name: 'file', value: 'ID3audio \u00e9\u00e9', filename: 'a.mp3' },
    ]);
    const answer = await post('/audio/transcriptions', f.body, f.type);
    expect(answer.status).toBe(200);
    const seen = relay.fake.requests[0];
    const expected = Buffer.from(f.body.toString('utf8').replace('\r\n\r\nwh-é\r\n', '\r\n\r\nwhisper-1\r\n'), 'utf8');
    expect(seen?.body.equals(expected)).toBe(true);
    expect(seen?.headers['content-length']).toBe(String(expected.length));
  });
});

/** The status of a realtime upgrade with `query`, as the alias-only user. */
function upgrade(query: string): Promise<{ status: number; code?: string }> {
  const ws = new WebSocket(`${relay.gateway.baseUrl.replace('http://', 'ws://')}/realtime${query}`, { headers: { authorization: `Bearer ${aliasOnly}` } });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate();
      resolve({ status: 101 });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(body) as { error: { code: string } }).error.code }));
    });
    ws.once('error', reject);
  });
}

describe('a realtime upgrade naming its model more than once or hiding it', () => {
  it('is refused before any upstream connection; the alias alone opens on its target', async () => {
    for (const query of ['?model=rt-fast&model=gpt-4o-realtime-preview', '?model=rt-fast&mode%6C=gpt-4o-realtime-preview', '?model=rt-fast&model', '?%6Dodel=rt-fast&model=rt-fast']) {
      expect(await upgrade(query), query).toEqual({ status: 400, code: 'invalid_request' });
    }
    // A semicolon is no separator: the whole value is one model name, not on the list.
    expect(await upgrade('?model=rt-fast;model=gpt-4o-realtime-preview')).toEqual({ status: 403, code: 'model_not_allowed' });
    expect(relay.fake.wsConnections).toHaveLength(0);
    expect(await upgrade('?model=rt-fast&x=1')).toEqual({ status: 101 });
    expect(relay.fake.wsConnections.map((c) => c.url)).toEqual(['/v1/realtime?model=gpt-realtime&x=1']);
  });
});

describe('GET /v1/models/{model}', () => {
  it("tells a user with a model list nothing of a model or an alias they may not use", async () => {
    const other = await relay.gateway.createUserKey('attack7-other-models', { models: ['gpt-4o-mini'] });
    registerSecret(other);
    relay.fake.handle((req) => (req.method === 'GET' ? { body: { id: decodeURIComponent(req.path.split('/').pop() ?? ''), object: 'model', created: 1, owned_by: 'system' } } : undefined));
    const get = async (model: string) => {
      const res = await fetch(`${relay.gateway.baseUrl}/models/${model}`, { headers: { authorization: `Bearer ${other}` } });
      return { status: res.status, json: (await res.json()) as any };
    };
    expect((await get('gpt-4o-mini')).status).toBe(200);
    for (const model of ['gpt-4o', 'fast']) {
      const answer = await get(model);
      expect(answer.status, model).toBe(403);
      expect(answer.json.error.code).toBe('model_not_allowed');
    }
    expect(relay.fake.requests.map((r) => r.path)).toEqual(['/v1/models/gpt-4o-mini']);
  });
});

describe('a streamed JSON body too large to parse whole, with a multi-byte alias', () => {
  it('reaches the upstream as valid JSON with the target and the usage option, and a right Content-Length', async () => {
    const filler = 'ü'.repeat(700_000);
    // `model` after the messages, and again a `model` nested inside them: only the top one moves.
    const body = `{"stream":true,"messages":[{"role":"user","content":"${filler}","model":"é"}],"model" : "é","n":1}`;
    const answer = await post('/chat/completions', body);
    expect(answer.status).toBe(200);
    const seen = relay.fake.requests[0];
    expect(seen?.headers['content-length']).toBe(String(seen?.body.length));
    const sent = JSON.parse(seen?.body.toString('utf8') ?? '') as Record<string, any>;
    expect(sent.model).toBe(TARGET);
    expect(sent.messages[0].model).toBe('é');
    expect(sent.messages[0].content).toBe(filler);
    expect(sent.stream_options).toEqual({ include_usage: true });
    expect(sent.n).toBe(1);
  });
});
