// A hostile user moves the model where the gateway does not look, leaves it out, or sends the body
// as another type, so that a model list or a dollar limit is never checked and the request is
// charged $0. The gateway decides what a request costs from the operation it matched
// (src/operations/costs.ts): a model read from JSON, from a form's fields before its file, or the
// operation's known default; a request it cannot bound is refused for a user with a model list or
// a dollar limit (src/quota/bounds.ts), and a body of a type the operation does not take is refused.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';

let fake: FakeUpstream;
let gateway: TestGateway;
/** Allowed only gpt-4o-mini. */
let narrow: string;
/** A dollar limit, any model. */
let dollars: string;
/** Allowed gpt-image-1 under a dollar limit. */
let painter: string;
/** No restriction at all. */
let open: string;

beforeAll(async () => {
  fake = await startFake();
  gateway = await startQuotaGateway(fake);
  narrow = await userWithKey(gateway, 'narrow', {}, { models: ['gpt-4o-mini'] });
  dollars = await userWithKey(gateway, 'dollars', { usdPerDay: 5 });
  painter = await userWithKey(gateway, 'painter', { usdPerDay: 5 }, { models: ['gpt-image-1'] });
  open = await userWithKey(gateway, 'open', {});
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

beforeEach(() => fake.reset());

interface Sent {
  status: number;
  json: { error?: { code: string; message: string; param: string | null } } & Record<string, unknown>;
}

async function send(key: string, path: string, body: BodyInit | undefined, contentType?: string): Promise<Sent> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (contentType) headers['content-type'] = contentType;
  const res = await fetch(`${gateway.url}/v1${path}`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, json: text.startsWith('{') ? JSON.parse(text) : {} };
}

const json = (key: string, path: string, body: unknown) => send(key, path, JSON.stringify(body), 'application/json');

/** A multipart form with its fields in the order given; `file` entries are files. */
function form(fields: Array<[string, string] | ['file' | 'image', Blob, string]>): FormData {
  const data = new FormData();
  for (const [name, value, filename] of fields) {
    if (typeof value === 'string') data.append(name, value);
    else data.append(name, value, filename);
  }
  return data;
}

const AUDIO = new Blob([Buffer.alloc(4096, 1)], { type: 'audio/mpeg' });
const PNG = new Blob([Buffer.alloc(2048, 2)], { type: 'image/png' });

function expectRefused(answer: Sent, status: number, code: string): void {
  expect(answer.status).toBe(status);
  expect(answer.json.error?.code).toBe(code);
  expect(fake.requests).toHaveLength(0);
}

describe('the model in a form', () => {
  it('is read from the fields before the file, and checked against the model list', async () => {
    const edit = form([['model', 'gpt-image-1'], ['prompt', 'a cat'], ['image', PNG, 'cat.png']]);
    expectRefused(await send(narrow, '/images/edits', edit), 403, 'model_not_allowed');
    const transcription = form([['model', 'whisper-1'], ['file', AUDIO, 'a.mp3']]);
    expectRefused(await send(narrow, '/audio/transcriptions', transcription), 403, 'model_not_allowed');
  });

  it('after the file, is not read: refused for a model list or a dollar limit, with a message saying why', async () => {
    for (const key of [narrow, dollars]) {
      const late = form([['file', AUDIO, 'a.mp3'], ['model', 'gpt-4o-mini']]);
      const answer = await send(key, '/audio/transcriptions', late);
      expectRefused(answer, 403, 'model_not_allowed');
      expect(answer.json.error?.message).toMatch(/names no model/);
    }
  });

  it('with no price, is refused under a dollar limit', async () => {
    const transcription = form([['model', 'my-whisper'], ['file', AUDIO, 'a.mp3']]);
    expectRefused(await send(dollars, '/audio/transcriptions', transcription), 403, 'model_not_allowed');
  });

  it('allowed and priced, is relayed byte for byte and charged the usage its answer reports', async () => {
    fake.handle((req) =>
      req.path === '/v1/images/edits'
        ? { body: { created: 1, data: [{ b64_json: 'AAAA' }], usage: { input_tokens: 50, output_tokens: 1000, total_tokens: 1050 } } }
        : undefined,
    );
    const edit = form([['model', 'gpt-image-1'], ['prompt', 'a cat'], ['image', PNG, 'cat.png']]);
    const answer = await send(painter, '/images/edits', edit);
    expect(answer.status).toBe(200);
    const seen = fake.requests[0];
    expect(seen?.body.includes(Buffer.alloc(2048, 2))).toBe(true);
    expect(seen?.body.toString('latin1')).toContain('name="model"\r\n\r\ngpt-image-1\r\n');
    // gpt-image-1: $5 per million input tokens, $40 per million output tokens.
    await until(async () => (await usageOf(gateway, 'painter')).day.usdMicros > 0, 'the charge');
    expect((await usageOf(gateway, 'painter')).day.usdMicros).toBe(50 * 5 + 1000 * 40);
  });

  it('for a user with no restriction, anywhere in the form: relayed as before', async () => {
    const late = form([['file', AUDIO, 'a.mp3'], ['model', 'whisper-1']]);
    expect((await send(open, '/audio/transcriptions', late)).status).toBe(200);
    expect(fake.requests).toHaveLength(1);
  });
});

describe('no model in the request', () => {
  it("takes the operation's default where the upstream has one: images/generations is dall-e-2", async () => {
    expectRefused(await json(narrow, '/images/generations', { prompt: 'a cat' }), 403, 'model_not_allowed');
    // dall-e-2 is priced per image: admitted under a dollar limit, and charged ($0.02 at 1024x1024).
    expect((await json(dollars, '/images/generations', { prompt: 'a cat' })).status).toBe(200);
    fake.requests.length = 0;
    expect((await json(open, '/images/generations', { prompt: 'a cat' })).status).toBe(200);
  });

  it('a response from a stored prompt, with no model: refused for a model list or a dollar limit', async () => {
    const body = { prompt: { id: 'pmpt_123', variables: { city: 'Paris' } } };
    expectRefused(await json(narrow, '/responses', body), 403, 'model_not_allowed');
    expectRefused(await json(dollars, '/responses', body), 403, 'model_not_allowed');
    expect((await json(open, '/responses', body)).status).toBe(200);
  });

  it("a run with the assistant's model: refused for a model list, relayed when it names an allowed one", async () => {
    fake.handle((req) => (req.path.startsWith('/v1/threads') ? { body: { id: 'run_1', object: 'thread.run' } } : undefined));
    expectRefused(await json(narrow, '/threads/runs', { assistant_id: 'asst_1' }), 403, 'model_not_allowed');
  });
});

describe('operations whose cost the gateway cannot see', () => {
  // A batch is checked and reserved from its input file (test/later-batch-refusals.test.ts).
  it.each([
    ['/realtime/client_secrets', { session: { type: 'realtime', model: 'gpt-realtime' } }],
    ['/chatkit/sessions', { workflow: { id: 'wf_1' }, user: 'u1' }],
  ])('POST %s is refused for a model list or a dollar limit', async (path, body) => {
    for (const key of [narrow, dollars]) {
      expectRefused(await json(key, path, body), 403, 'route_not_allowed');
    }
  });
});

describe('a body of another type than the operation takes', () => {
  it.each(['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream'])(
    'a chat completion sent as %s is refused before anything is read or relayed',
    async (type) => {
      const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100_000 });
      for (const key of [narrow, open]) {
        const answer = await send(key, '/chat/completions', body, type);
        expectRefused(answer, 400, 'invalid_request');
        expect(answer.json.error?.message).toContain('application/json');
      }
    },
  );

  it('a JSON image edit is read as JSON, a form as a form', async () => {
    expectRefused(await json(narrow, '/images/edits', { model: 'gpt-image-1', prompt: 'x', images: [{ image_url: 'https://x' }] }), 403, 'model_not_allowed');
  });
});

describe('operations the table does not know', () => {
  it('a write names its model in JSON: checked as any other', async () => {
    expectRefused(await json(narrow, '/brand_new_things', { model: 'gpt-4o', input: 'x' }), 403, 'model_not_allowed');
    expectRefused(await json(narrow, '/brand_new_things', { input: 'x' }), 403, 'model_not_allowed');
    // Allowed, so relayed: the upstream's own 404 for a route it does not have comes back.
    const relayed = await json(narrow, '/brand_new_things', { model: 'gpt-4o-mini', input: 'x' });
    expect(relayed.status).toBe(404);
    expect(relayed.json).toEqual({ error: { message: 'Invalid URL (POST /v1/brand_new_things)', type: 'invalid_request_error', param: null, code: null } });
  });
});

describe('organization routes', () => {
  it('are refused to every user key by default, before they reach a pool key', async () => {
    const res = await fetch(`${gateway.url}/v1/organization/costs?start_time=1`, { headers: { authorization: `Bearer ${open}` } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as Sent['json']).error?.code).toBe('route_not_allowed');
    const escaped = await fetch(`${gateway.url}/v1/%6Frganization/costs`, { headers: { authorization: `Bearer ${open}` } });
    expect(escaped.status).toBe(403);
    expect(fake.requests).toHaveLength(0);
  });
});
