// A batch's output file comes into being when the batch completes, long after POST /v1/batches
// answered (`output_file_id: null` then). The client learns it by polling GET /v1/batches/{id}, but
// the object tap reads only POST and DELETE answers (src/relay/object-tap.ts objectTapFor; a GET
// only for a fine-tuning job's models), so the output file is never recorded as its batch owner's:
//   - with pool.shareUnknownObjects, another user reads it (GET /v1/files/{id}/content);
//   - without it, its owner gets 404 for the results of her own batch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-attack2-batch-out-0001';

function batch(id: string, inputFileId: string, done: boolean) {
  return {
    id,
    object: 'batch',
    endpoint: '/v1/chat/completions',
    input_file_id: inputFileId,
    completion_window: '24h',
    status: done ? 'completed' : 'validating',
    output_file_id: done ? `file-out${id.slice(6)}` : null,
    error_file_id: null,
  };
}

describe.each([true, false])('shareUnknownObjects %s', (share) => {
  let fake: FakeUpstream;
  let gateway: TestGateway;
  let alice: string;
  let mallory: string;
  let seq = 0;

  beforeAll(async () => {
    registerPoolKey(POOL_KEY);
    fake = await startFakeUpstream();
    gateway = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
      config: { pool: { shareUnknownObjects: share } as Config['pool'] },
    });
    alice = await gateway.createUserKey('alice');
    mallory = await gateway.createUserKey('mallory');
    registerSecret(alice);
    registerSecret(mallory);
    const inputs = new Map<string, string>();
    fake.handle((req) => {
      if (req.method === 'POST' && req.path === '/v1/batches') {
        const id = `batch_${++seq}x`;
        inputs.set(id, (req.json as { input_file_id: string }).input_file_id);
        return { body: batch(id, inputs.get(id) ?? '', false) };
      }
      const polled = /^\/v1\/batches\/(batch_[^/]+)$/.exec(req.path)?.[1];
      if (req.method === 'GET' && polled) return { body: batch(polled, inputs.get(polled) ?? '', true) };
      return undefined;
    });
  });
  afterAll(async () => {
    await gateway.close();
    await fake.close();
  });

  const call = (key: string, method: string, path: string, body?: BodyInit, type?: string) =>
    fetch(`${gateway.baseUrl}${path}`, { method, headers: { authorization: `Bearer ${key}`, ...(type ? { 'content-type': type } : {}) }, body });

  it("the output file of alice's batch is alice's: she reads it, mallory gets 404", async () => {
    const form = new FormData();
    form.set('purpose', 'batch');
    form.set('file', new Blob(['{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[]}}\n']), 'input.jsonl');
    const input = ((await (await call(alice, 'POST', '/files', form)).json()) as { id: string }).id;
    const created = await call(alice, 'POST', '/batches', JSON.stringify({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' }), 'application/json');
    expect(created.status).toBe(200);
    const batchId = ((await created.json()) as { id: string }).id;
    const polled = (await (await call(alice, 'GET', `/batches/${batchId}`)).json()) as { output_file_id: string };
    const output = polled.output_file_id;
    expect(output).toMatch(/^file-out/);

    const hers = await call(alice, 'GET', `/files/${output}/content`);
    await hers.arrayBuffer();
    const theirs = await call(mallory, 'GET', `/files/${output}/content`);
    await theirs.arrayBuffer();
    expect({ alice: hers.status, mallory: theirs.status }).toEqual({ alice: 200, mallory: 404 });
  });
});
