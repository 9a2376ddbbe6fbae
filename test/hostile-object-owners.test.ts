// A hostile user cannot reach another user's objects of the kinds that do not look like ids, nor
// inherit a deleted user's objects by taking their id: bob's fine-tuned model (`ft:…`) is 404 for
// alice wherever she names it and hidden from her model list, ChatKit threads (`cthr_`) are their
// session user's, and a deleted user's id is never given out again. Real gateway, fake upstream.
import OpenAI, { NotFoundError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeFineTunedModel } from '../src/dev/fake-openai-answers.js';
import type { RecordedRequest } from '../src/dev/fake-upstream.js';
import { registerSecret } from './helpers/log-capture.js';
import { type Answer, type PoolFixture, startPool } from './helpers/pool-fixture.js';

let pool: PoolFixture;
let alice: OpenAI;
let bob: OpenAI;
let aliceKey: string;
let bobKey: string;

const client = (apiKey: string) => new OpenAI({ baseURL: pool.gateway.baseUrl, apiKey, maxRetries: 0 });
const noSuchObject = (id: string) => ({ error: { message: `No such object: ${id}`, type: 'invalid_request_error', param: null, code: 'not_found' } });
const noSuchModel = (model: string) => ({
  error: { message: `The model \`${model}\` does not exist or you do not have access to it.`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
});

async function call(apiKey: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${pool.gateway.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined };
}

/** Upstream requests that carry `needle` in their path or body. */
const upstreamSaw = (needle: string): RecordedRequest[] =>
  pool.fake.requests.filter((r) => decodeURIComponent(r.path).includes(needle) || r.body.toString('utf8').includes(needle));

beforeAll(async () => {
  pool = await startPool({ keys: ['a', 'b'], userId: 'alice' });
  aliceKey = pool.userKey;
  alice = client(aliceKey);
  bobKey = await pool.gateway.createUserKey('bob');
  registerSecret(bobKey);
  bob = client(bobKey);
  // Fine-tuning jobs and ChatKit sessions are refused unless allowed (docs/metering.md).
  for (const id of ['alice', 'bob']) {
    expect((await pool.gateway.admin('PATCH', `/users/${id}`, { allow: ['fine_tuning', 'chatkit_sessions'] })).status).toBe(200);
  }
});
afterAll(() => pool.close());

describe("bob's fine-tuned model", () => {
  let jobId: string;
  let model: string;
  let jobKey: string;

  beforeAll(async () => {
    const file = await bob.files.create({ file: await toFile(Buffer.from('{"messages":[]}\n'), 'train.jsonl'), purpose: 'fine-tune' });
    const job = await bob.fineTuning.jobs.create({ model: 'gpt-4o-mini-2024-07-18', training_file: file.id });
    jobId = job.id;
    expect(job.fine_tuned_model).toBeNull();
    // The job finishes; bob looks at it and sees his model.
    const done = await bob.fineTuning.jobs.retrieve(jobId);
    model = fakeFineTunedModel(jobId);
    expect(done.fine_tuned_model).toBe(model);
    jobKey = pool.keyOf(pool.fake.requests.find((r) => r.method === 'POST' && r.path === '/v1/fine_tuning/jobs')!);
  });

  it('serves bob, through the key that made it, whatever the rotation says', async () => {
    for (let i = 0; i < 3; i++) {
      const answer = await bob.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] });
      expect(answer.model).toBe(model);
    }
    expect(upstreamSaw(model).filter((r) => r.path === '/v1/chat/completions').map(pool.keyOf)).toEqual([jobKey, jobKey, jobKey]);
  });

  it('is 404 model_not_found for alice in chat completions, plain and streamed, and in a response; the upstream never hears of it', async () => {
    const before = upstreamSaw(model).length;
    await expect(alice.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] })).rejects.toBeInstanceOf(NotFoundError);
    for (const [path, body] of [
      ['/chat/completions', { model, messages: [{ role: 'user', content: 'Hi' }] }],
      ['/responses', { model, input: 'Hi' }],
      ['/chat/completions', { model, messages: [{ role: 'user', content: 'Hi' }], stream: true }],
    ] as const) {
      const answer = await call(aliceKey, 'POST', path, body);
      expect(answer.status, path).toBe(404);
      expect(answer.json, path).toEqual(noSuchModel(model));
    }
    expect(upstreamSaw(model).length).toBe(before);
  });

  it('cannot be read or deleted by alice through /v1/models/{model}, escaped or not', async () => {
    const before = upstreamSaw(model).length;
    await expect(alice.models.delete(model)).rejects.toMatchObject({ status: 404, error: noSuchModel(model).error });
    await expect(alice.models.retrieve(model)).rejects.toMatchObject({ status: 404, error: noSuchModel(model).error });
    for (const method of ['GET', 'DELETE']) {
      const answer = await call(aliceKey, method, `/models/${model}`);
      expect(answer.status, method).toBe(404);
      expect(answer.json).toEqual(noSuchModel(model));
    }
    expect(upstreamSaw(model).length).toBe(before);
  });

  it("is left out of alice's model list and kept in bob's; base models stay in both", async () => {
    const stranger = 'ft:gpt-4o-mini-2024-07-18:another-org::neverseen';
    pool.fake.handle((req) =>
      req.method === 'GET' && req.path === '/v1/models'
        ? { body: { object: 'list', data: ['gpt-4o-mini', model, stranger, 'gpt-4o'].map((id) => ({ id, object: 'model', created: 1, owned_by: 'system' })) } }
        : undefined,
    );
    const ids = async (who: OpenAI) => (await who.models.list()).data.map((m) => m.id);
    expect(await ids(alice)).toEqual(['gpt-4o-mini', 'gpt-4o']);
    expect(await ids(bob)).toEqual(['gpt-4o-mini', model, 'gpt-4o']);
  });

  it("made by a job bob only listed is his too, and not alice's", async () => {
    const other = 'ftjob-listedonly1';
    const otherModel = fakeFineTunedModel(other);
    const file = await bob.files.create({ file: await toFile(Buffer.from('{"messages":[]}\n'), 'train.jsonl'), purpose: 'fine-tune' });
    pool.fake.handle((req) => (req.method === 'POST' && req.path === '/v1/fine_tuning/jobs' ? { body: { id: other, object: 'fine_tuning.job', status: 'queued', fine_tuned_model: null } } : undefined));
    await bob.fineTuning.jobs.create({ model: 'gpt-4o-mini-2024-07-18', training_file: file.id });
    pool.fake.handle((req) =>
      req.method === 'GET' && req.path === '/v1/fine_tuning/jobs'
        ? { body: { object: 'list', data: [{ id: other, object: 'fine_tuning.job', status: 'succeeded', fine_tuned_model: otherModel }], has_more: false } }
        : undefined,
    );
    expect((await alice.fineTuning.jobs.list()).data).toEqual([]);
    expect((await call(aliceKey, 'POST', '/chat/completions', { model: otherModel, messages: [] })).status).toBe(404);
    expect((await bob.fineTuning.jobs.list()).data.map((j) => j.fine_tuned_model)).toEqual([otherModel]);
    expect((await call(bobKey, 'POST', '/chat/completions', { model: otherModel, messages: [] })).status).toBe(200);
    expect((await call(aliceKey, 'POST', '/chat/completions', { model: otherModel, messages: [] })).json).toEqual(noSuchModel(otherModel));
  });

  it('is deleted by bob through its key, and is then gone for him too', async () => {
    expect(await bob.models.delete(model)).toEqual({ id: model, object: 'model', deleted: true });
    expect(upstreamSaw(model).filter((r) => r.method === 'DELETE').map(pool.keyOf)).toEqual([jobKey]);
    expect((await call(bobKey, 'POST', '/chat/completions', { model, messages: [] })).json).toEqual(noSuchModel(model));
  });

  it('that the gateway never saw made is 404 for everyone', async () => {
    const unseen = 'ft:gpt-4o-mini-2024-07-18:some-org:custom:unseen1';
    expect((await call(bobKey, 'POST', '/chat/completions', { model: unseen, messages: [] })).json).toEqual(noSuchModel(unseen));
    expect(upstreamSaw(unseen)).toEqual([]);
  });
});

describe('ChatKit threads', () => {
  let bobSessionKey: string;

  beforeAll(async () => {
    const session = await call(bobKey, 'POST', '/chatkit/sessions', { user: 'bob-end-user', workflow: { id: 'wf_1' } });
    expect(session.status).toBe(200);
    expect(session.json).toMatchObject({ object: 'chatkit.session', user: 'bob-end-user' });
    bobSessionKey = pool.keyOf(pool.fake.requests.at(-1)!);
    expect((await call(aliceKey, 'POST', '/chatkit/sessions', { user: 'alice-end-user', workflow: { id: 'wf_1' } })).status).toBe(200);
    // Threads are made by the ChatKit front end; the upstream lists them with their session's user.
    pool.fake.handle((req) =>
      req.method === 'GET' && req.path === '/v1/chatkit/threads'
        ? {
            body: {
              object: 'list',
              data: [
                { id: 'cthr_bob1', object: 'chatkit.thread', created_at: 1, title: 'Mine', status: { type: 'active' }, user: 'bob-end-user' },
                { id: 'cthr_alice1', object: 'chatkit.thread', created_at: 1, title: null, status: { type: 'active' }, user: 'alice-end-user' },
                { id: 'cthr_nobody1', object: 'chatkit.thread', created_at: 1, title: null, status: { type: 'active' }, user: 'someone' },
              ],
              first_id: 'cthr_bob1',
              last_id: 'cthr_nobody1',
              has_more: false,
            },
          }
        : undefined,
    );
  });

  it("a session for another gateway user's ChatKit user is refused, and the upstream never hears of it", async () => {
    const before = pool.fake.requests.length;
    const answer = await call(aliceKey, 'POST', '/chatkit/sessions', { user: 'bob-end-user', workflow: { id: 'wf_1' } });
    expect(answer.status).toBe(409);
    expect(answer.json).toEqual({
      error: {
        message: 'This ChatKit `user` belongs to another user of this gateway: its threads are theirs. Pick another user identifier.',
        type: 'invalid_request_error',
        param: 'user',
        code: 'conflict',
      },
    });
    expect(pool.fake.requests.length).toBe(before);
  });

  it('lists show each user only the threads of their own ChatKit users', async () => {
    const alicePage = await call(aliceKey, 'GET', '/chatkit/threads?limit=20');
    expect(alicePage.json.data.map((t: { id: string }) => t.id)).toEqual(['cthr_alice1']);
    expect(alicePage.json).toMatchObject({ first_id: 'cthr_alice1', last_id: 'cthr_alice1' });
    // Asking for bob's user by name changes nothing.
    expect((await call(aliceKey, 'GET', '/chatkit/threads?user=bob-end-user')).json.data.map((t: { id: string }) => t.id)).toEqual(['cthr_alice1']);
    expect((await call(bobKey, 'GET', '/chatkit/threads')).json.data.map((t: { id: string }) => t.id)).toEqual(['cthr_bob1']);
  });

  it("another user's thread is 404 to read, to list the items of and to delete; the upstream never hears of it", async () => {
    const before = upstreamSaw('cthr_bob1').length;
    for (const [method, path] of [
      ['GET', '/chatkit/threads/cthr_bob1'],
      ['GET', '/chatkit/threads/cthr_bob1/items?limit=3'],
      ['DELETE', '/chatkit/threads/cthr_bob1'],
    ] as const) {
      const answer = await call(aliceKey, method, path);
      expect(answer.status, path).toBe(404);
      expect(answer.json, path).toEqual(noSuchObject('cthr_bob1'));
    }
    expect(upstreamSaw('cthr_bob1').length).toBe(before);
  });

  it('the owner reaches their thread through the key of their session', async () => {
    for (let i = 0; i < 2; i++) expect((await call(bobKey, 'GET', '/chatkit/threads/cthr_bob1/items')).status).toBe(200);
    expect(upstreamSaw('cthr_bob1').map(pool.keyOf)).toEqual([bobSessionKey, bobSessionKey]);
  });

  it('a thread of a ChatKit user no one here claimed, or never listed, is 404 for everyone', async () => {
    for (const id of ['cthr_nobody1', 'cthr_neverlisted1']) {
      for (const key of [aliceKey, bobKey]) expect((await call(key, 'GET', `/chatkit/threads/${id}`)).json).toEqual(noSuchObject(id));
    }
  });
});

describe('the id of a deleted user', () => {
  it('is never given out again, so nobody inherits their objects and counters', async () => {
    const { gateway } = pool;
    const key = await gateway.createUserKey('carol');
    registerSecret(key);
    const file = await client(key).files.create({ file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'user_data' });
    expect((await gateway.admin('DELETE', '/users/carol')).status).toBe(200);
    const again = await gateway.admin('POST', '/users', { id: 'carol' });
    expect(again).toEqual({
      status: 409,
      json: {
        error: {
          message: 'A user with id "carol" existed and was deleted: ids of deleted users are never reused. Pick another id.',
          type: 'invalid_request_error',
          param: 'id',
          code: 'conflict',
        },
      },
    });
    expect((await gateway.admin('GET', '/users/carol')).status).toBe(404);
    // A new user of another name does not see carol's file either.
    const dave = client(await gateway.createUserKey('dave'));
    await expect(dave.files.retrieve(file.id)).rejects.toMatchObject({ status: 404, error: noSuchObject(file.id).error });
  });
});
