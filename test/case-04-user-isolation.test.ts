// Case 4 (docs/reliability.md): one user cannot see, use or delete another user's objects. Files
// and responses are in pool-sticky-objects.test.ts, fine-tuned models and ChatKit threads in
// hostile-object-owners.test.ts, keys and usage in attack8-user-reach.test.ts; here the other kinds
// the gateway pins to their creator (src/pool/objects.ts): batches, vector stores, fine-tuning jobs,
// uploads, assistants and threads. Each is made by alice through the gateway, then bob tries every
// route that names it, in the path and in a body: 404 not_found, and the upstream never hears of it.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-case-04-isolation-1';
let relay: RelayFixture;
let aliceKey: string;
let bobKey: string;
const ids: Record<string, string> = {};
let serial = 0;

// Creates the fake upstream answers as OpenAI does (an id of the kind's prefix), and lists what it made.
const CREATES: Record<string, [prefix: string, object: string]> = {
  '/v1/vector_stores': ['vs_', 'vector_store'],
  '/v1/uploads': ['upload_', 'upload'],
  '/v1/assistants': ['asst_', 'assistant'],
  '/v1/threads': ['thread_', 'thread'],
};
const made: Array<{ id: string; object: string }> = [];

async function call(key: string, method: string, path: string, body?: unknown) {
  const res = await request(`${relay.gateway.baseUrl}${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), 'openai-beta': 'assistants=v2' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, text, json: text ? (JSON.parse(text) as any) : undefined };
}

beforeAll(async () => {
  relay = await startRelay(POOL_KEY);
  relay.fake.handle((req) => {
    const create = CREATES[req.path];
    if (req.method === 'POST' && create) {
      const object = { id: `${create[0]}${String(++serial).padStart(8, '0')}Iso`, object: create[1] };
      made.push(object);
      return { body: { ...object, created_at: 1767225600 } };
    }
    if (req.method === 'GET' && CREATES[req.path]) {
      const data = made.filter((o) => o.object === CREATES[req.path]![1]);
      return { body: { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: false } };
    }
    return undefined;
  });
  aliceKey = await relay.gateway.createUserKey('alice', { allow: ['fine_tuning'] });
  bobKey = await relay.gateway.createUserKey('bob', { allow: ['fine_tuning'] });
  registerSecret(aliceKey);
  registerSecret(bobKey);

  const file = await request(`${relay.gateway.baseUrl}/files`, {
    method: 'POST',
    headers: { authorization: `Bearer ${aliceKey}`, 'content-type': 'multipart/form-data; boundary=b' },
    body:
      '--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n' +
      '--b\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n' +
      '{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[],"max_tokens":10}}\n' +
      '\r\n--b--\r\n',
  });
  ids.file = ((await file.body.json()) as { id: string }).id;
  const creates: Array<[string, string, unknown]> = [
    ['batch', '/batches', { input_file_id: ids.file, endpoint: '/v1/chat/completions', completion_window: '24h' }],
    ['vectorStore', '/vector_stores', { name: 'alice notes' }],
    ['job', '/fine_tuning/jobs', { model: 'gpt-4o-mini-2024-07-18', training_file: ids.file }],
    ['upload', '/uploads', { filename: 'a.jsonl', purpose: 'fine-tune', bytes: 10, mime_type: 'text/jsonl' }],
    ['assistant', '/assistants', { model: 'gpt-4o-mini' }],
    ['thread', '/threads', {}],
  ];
  for (const [name, path, body] of creates) {
    const answer = await call(aliceKey, 'POST', path, body);
    if (answer.status !== 200) throw new Error(`create ${path}: ${answer.status} ${answer.text}`);
    ids[name] = answer.json.id as string;
  }
});
afterAll(() => relay.close());

const NOT_FOUND = (id: string) => ({ error: { message: `No such object: ${id}`, type: 'invalid_request_error', param: null, code: 'not_found' } });

describe('case 4: one user cannot reach another user\'s objects', () => {
  it('alice reaches each of her objects', async () => {
    for (const path of [`/batches/${ids.batch}`, `/vector_stores/${ids.vectorStore}`, `/fine_tuning/jobs/${ids.job}`, `/assistants/${ids.assistant}`, `/threads/${ids.thread}`]) {
      expect((await call(aliceKey, 'GET', path)).status, path).toBe(200);
    }
  });

  it('bob gets 404 for each of them, by path, to read, change, use and delete; the upstream never hears of it', async () => {
    const tries: Array<[string, string, string, unknown?]> = [
      [ids.batch!, 'GET', `/batches/${ids.batch}`],
      [ids.batch!, 'POST', `/batches/${ids.batch}/cancel`],
      [ids.vectorStore!, 'GET', `/vector_stores/${ids.vectorStore}`],
      [ids.vectorStore!, 'POST', `/vector_stores/${ids.vectorStore}`, { name: 'mine now' }],
      [ids.vectorStore!, 'GET', `/vector_stores/${ids.vectorStore}/files`],
      [ids.vectorStore!, 'POST', `/vector_stores/${ids.vectorStore}/search`, { query: 'secrets' }],
      [ids.vectorStore!, 'DELETE', `/vector_stores/${ids.vectorStore}`],
      [ids.job!, 'GET', `/fine_tuning/jobs/${ids.job}`],
      [ids.job!, 'GET', `/fine_tuning/jobs/${ids.job}/events`],
      [ids.job!, 'POST', `/fine_tuning/jobs/${ids.job}/cancel`],
      [ids.upload!, 'POST', `/uploads/${ids.upload}/complete`, { part_ids: [] }],
      [ids.upload!, 'POST', `/uploads/${ids.upload}/cancel`],
      [ids.assistant!, 'GET', `/assistants/${ids.assistant}`],
      [ids.assistant!, 'POST', `/assistants/${ids.assistant}`, { name: 'mine now' }],
      [ids.assistant!, 'DELETE', `/assistants/${ids.assistant}`],
      [ids.thread!, 'GET', `/threads/${ids.thread}`],
      [ids.thread!, 'GET', `/threads/${ids.thread}/messages`],
      [ids.thread!, 'POST', `/threads/${ids.thread}/messages`, { role: 'user', content: 'hi' }],
      [ids.thread!, 'DELETE', `/threads/${ids.thread}`],
    ];
    const before = relay.fake.requests.length;
    for (const [id, method, path, body] of tries) {
      const answer = await call(bobKey, method, path, body);
      expect(answer.status, `${method} ${path}`).toBe(404);
      expect(answer.json, `${method} ${path}`).toEqual(NOT_FOUND(id));
    }
    expect(relay.fake.requests.length).toBe(before);
  });

  it('bob gets 404 when a body names them: a run on her assistant, her file in his store or job, her store in a response', async () => {
    const tries: Array<[string, string, unknown]> = [
      [ids.assistant!, '/threads/runs', { assistant_id: ids.assistant }],
      [ids.file!, '/vector_stores', { name: 'x', file_ids: [ids.file] }],
      [ids.file!, '/batches', { input_file_id: ids.file, endpoint: '/v1/chat/completions', completion_window: '24h' }],
      [ids.file!, '/fine_tuning/jobs', { model: 'gpt-4o-mini-2024-07-18', training_file: ids.file }],
      [ids.vectorStore!, '/responses', { model: 'gpt-4o-mini', input: 'hi', tools: [{ type: 'file_search', vector_store_ids: [ids.vectorStore] }] }],
      [ids.vectorStore!, '/assistants', { model: 'gpt-4o-mini', tool_resources: { file_search: { vector_store_ids: [ids.vectorStore] } } }],
    ];
    const before = relay.fake.requests.length;
    for (const [id, path, body] of tries) {
      const answer = await call(bobKey, 'POST', path, body);
      expect(answer.status, path).toBe(404);
      expect(answer.json.error.code, path).toBe('not_found');
      expect(answer.json.error.message, path).toContain(id);
    }
    expect(relay.fake.requests.length).toBe(before);
  });

  it("bob's lists leave out every one of alice's objects", async () => {
    for (const path of ['/vector_stores', '/assistants', '/batches', '/fine_tuning/jobs']) {
      const answer = await call(bobKey, 'GET', path);
      expect(answer.status, path).toBe(200);
      for (const id of Object.values(ids)) expect(answer.text, path).not.toContain(id);
    }
    const mine = await call(aliceKey, 'GET', '/vector_stores');
    expect(mine.json.data.map((o: { id: string }) => o.id)).toContain(ids.vectorStore);
  });

  it('alice can still delete hers after all that', async () => {
    relay.fake.handle((req) => (req.method === 'DELETE' ? { body: { id: req.path.split('/').pop(), object: 'assistant.deleted', deleted: true } } : undefined));
    expect((await call(aliceKey, 'DELETE', `/assistants/${ids.assistant}`)).status).toBe(200);
  });
});
