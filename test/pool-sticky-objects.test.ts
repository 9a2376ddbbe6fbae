// Objects stay with their key and their user (README, "The key pool"): a file uploaded through the
// pool is retrieved, downloaded, named by a batch and deleted through the key that created it,
// whichever key the pool's rotation would pick; another user gets 404 for it and does not see it
// in a list; a response made in a stream pins its follow-ups the same way.
import OpenAI, { NotFoundError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordedRequest } from '../src/dev/fake-upstream.js';
import { registerSecret } from './helpers/log-capture.js';
import { CHAT, type PoolFixture, startPool } from './helpers/pool-fixture.js';

let pool: PoolFixture;
let alice: OpenAI;
let bob: OpenAI;
let bobKey: string;
let fileId: string;
let uploadedWith: string;

const client = (apiKey: string) => new OpenAI({ baseURL: pool.gateway.baseUrl, apiKey, maxRetries: 0 });
const noSuchObject = (id: string) => ({ error: { message: `No such object: ${id}`, type: 'invalid_request_error', param: null, code: 'not_found' } });

/** The pool keys of the upstream requests for this method and path, in order. */
function keysFor(method: string, path: string): string[] {
  return pool.fake.requests.filter((r: RecordedRequest) => r.method === method && r.path === path).map(pool.keyOf);
}

beforeAll(async () => {
  pool = await startPool({ keys: ['a', 'b'], userId: 'alice' });
  alice = client(pool.userKey);
  bobKey = await pool.gateway.createUserKey('bob');
  registerSecret(bobKey);
  bob = client(bobKey);
  // Deleting a file answers as OpenAI does, so the gateway sees the deletion.
  pool.fake.handle((req) => {
    const m = /^\/v1\/files\/([^/]+)$/.exec(req.path);
    return req.method === 'DELETE' && m ? { body: { id: m[1], object: 'file', deleted: true } } : undefined;
  });
  const file = await alice.files.create({ file: await toFile(Buffer.from('{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[]}}\n'), 'input.jsonl'), purpose: 'batch' });
  fileId = file.id;
  uploadedWith = pool.keyOf(pool.fake.requests[0]!);
});
afterAll(() => pool.close());

describe('the user who uploaded a file', () => {
  it('reaches it through the key that created it, whatever the rotation says', async () => {
    for (let i = 0; i < 3; i++) {
      // Requests naming no object keep going round the keys in between.
      expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
      expect(await alice.files.retrieve(fileId)).toMatchObject({ object: 'fake.echo', path: `/v1/files/${fileId}` });
    }
    expect(keysFor('POST', '/v1/chat/completions')).toContain(uploadedWith === 'a' ? 'b' : 'a');
    expect(keysFor('GET', `/v1/files/${fileId}`)).toEqual([uploadedWith, uploadedWith, uploadedWith]);
  });

  it('downloads its content and names it in a batch through that key', async () => {
    const content = await alice.files.content(fileId);
    expect(content.status).toBe(200);
    await alice.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    // The client's download, then the gateway's own read of the batch's input: both on the file's key.
    expect(keysFor('GET', `/v1/files/${fileId}/content`)).toEqual([uploadedWith, uploadedWith]);
    expect(keysFor('POST', '/v1/batches')).toEqual([uploadedWith]);
    expect(pool.fake.requests.find((r) => r.path === '/v1/batches')?.json).toEqual({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
  });

  it('sees only their own files in a list', async () => {
    pool.fake.handle((req) =>
      req.method === 'GET' && req.path === '/v1/files'
        ? { body: { object: 'list', data: [{ id: 'file-someoneelse1', object: 'file' }, { id: fileId, object: 'file' }], first_id: 'file-someoneelse1', last_id: fileId, has_more: false } }
        : undefined,
    );
    const page = await pool.get('/files');
    expect(page.json).toEqual({ object: 'list', data: [{ id: fileId, object: 'file' }], first_id: fileId, last_id: fileId, has_more: false });
    expect(page.headers.get('content-length')).toBe(String(Buffer.byteLength(page.text)));
  });
});

describe('another user', () => {
  it('gets 404 for the file, without the upstream hearing of it', async () => {
    const before = pool.fake.requests.length;
    for (const path of [`/files/${fileId}`, `/files/${fileId}/content`]) {
      const res = await fetch(`${pool.gateway.baseUrl}${path}`, { headers: { authorization: `Bearer ${bobKey}` } });
      expect(res.status, path).toBe(404);
      expect(await res.json(), path).toEqual(noSuchObject(fileId));
    }
    await expect(bob.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' })).rejects.toBeInstanceOf(NotFoundError);
    await expect(bob.files.delete(fileId)).rejects.toMatchObject({ status: 404, error: noSuchObject(fileId).error });
    expect(pool.fake.requests.length).toBe(before);
  });

  it('sees an empty list', async () => {
    const page = await bob.files.list();
    expect(page.data).toEqual([]);
  });

  it('gets 404 for files the gateway never saw created', async () => {
    await expect(alice.files.retrieve('file-neverseen1')).rejects.toMatchObject({ status: 404, error: noSuchObject('file-neverseen1').error });
  });
});

describe('a deleted file', () => {
  it('is deleted through its key, and is gone for its owner too', async () => {
    expect(await alice.files.delete(fileId)).toEqual({ id: fileId, object: 'file', deleted: true });
    expect(keysFor('DELETE', `/v1/files/${fileId}`)).toEqual([uploadedWith]);
    await expect(alice.files.retrieve(fileId)).rejects.toMatchObject({ status: 404 });
  });
});

describe('a response created in a stream', () => {
  it('pins the follow-up that names it to its key, and is 404 for another user', async () => {
    const stream = await alice.responses.create({ model: 'gpt-4o-mini', input: 'Hi', stream: true });
    let responseId = '';
    for await (const event of stream) if (event.type === 'response.created') responseId = event.response.id;
    expect(responseId).toMatch(/^resp_/);
    const madeWith = keysFor('POST', '/v1/responses')[0];
    for (let i = 0; i < 3; i++) {
      await alice.responses.create({ model: 'gpt-4o-mini', input: 'And then?', previous_response_id: responseId });
    }
    expect(keysFor('POST', '/v1/responses')).toEqual([madeWith, madeWith, madeWith, madeWith]);
    await expect(bob.responses.create({ model: 'gpt-4o-mini', input: 'Mine now', previous_response_id: responseId })).rejects.toMatchObject({
      status: 404,
      error: noSuchObject(responseId).error,
    });
  });
});
