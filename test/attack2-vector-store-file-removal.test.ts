// Removing a file from a vector store (DELETE /v1/vector_stores/{vs}/files/{file_id}) is answered
// by OpenAI as `{id: "file-…", object: "vector_store.file.deleted", deleted: true}`: the file itself
// stays. The object tap (src/relay/object-tap.ts end(), deletedObjectId of src/pool/objects.ts)
// reads any `{id, deleted: true}` as the deletion of that id, so the gateway forgets who owns the
// file. With pool.shareUnknownObjects the file is then open to every user; without it, its owner
// gets 404 for her own file. And the owner's count drops while the file still exists.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-attack2-vsfile-000001';

let fake: FakeUpstream;
let gateway: TestGateway;
let alice: string;
let mallory: string;

beforeAll(async () => {
  registerPoolKey(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { pool: { shareUnknownObjects: true } as Config['pool'] },
  });
  alice = await gateway.createUserKey('alice');
  mallory = await gateway.createUserKey('mallory');
  registerSecret(alice);
  registerSecret(mallory);
  fake.handle((req) => {
    if (req.method === 'POST' && req.path === '/v1/vector_stores') return { body: { id: 'vs_alice1', object: 'vector_store', name: 'mine' } };
    const removed = /^\/v1\/vector_stores\/vs_[^/]+\/files\/(file-[^/]+)$/.exec(req.path)?.[1];
    if (req.method === 'DELETE' && removed) return { body: { id: removed, object: 'vector_store.file.deleted', deleted: true } };
    return undefined;
  });
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

function call(key: string, method: string, path: string, body?: BodyInit, type?: string) {
  return fetch(`${gateway.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(type ? { 'content-type': type } : {}) },
    body,
  });
}

it("taking her file out of her vector store leaves alice's file hers", async () => {
  const form = new FormData();
  form.set('purpose', 'assistants');
  form.set('file', new Blob(['secret notes of alice']), 'notes.txt');
  const uploaded = await call(alice, 'POST', '/files', form);
  expect(uploaded.status).toBe(200);
  const fileId = ((await uploaded.json()) as { id: string }).id;
  const store = await call(alice, 'POST', '/vector_stores', JSON.stringify({ name: 'mine', file_ids: [fileId] }), 'application/json');
  expect(store.status).toBe(200);
  expect((await call(mallory, 'GET', `/files/${fileId}`)).status).toBe(404);

  const removed = await call(alice, 'DELETE', `/vector_stores/vs_alice1/files/${fileId}`);
  expect(removed.status).toBe(200);
  await removed.text();

  // The file is still alice's upstream: mallory must still get 404.
  const stolen = await call(mallory, 'GET', `/files/${fileId}`);
  await stolen.text();
  expect(stolen.status).toBe(404);
});
