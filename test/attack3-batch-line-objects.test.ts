// A batch's lines are requests the upstream runs later on the batch's pool key. A line of a
// /v1/responses batch may name objects (`previous_response_id`, a file in `input_file`): over HTTP
// the gateway answers another user's object 404, but the batch check (src/relay/batch-input.ts)
// reads each line's model and worst case only, so Mallory can continue Alice's stored response
// (and read it back in the batch's output) or feed Alice's file to the model.
import OpenAI, { NotFoundError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { startFake, startQuotaGateway, userWithKey } from './helpers/quota-fixture.js';

let fake: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  fake = await startFake();
  gateway = await startQuotaGateway(fake);
});
afterAll(async () => {
  await gateway?.close();
  await fake?.close();
});

const client = (key: string) => new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0 });

describe('a batch line naming another user\'s object', () => {
  it.each([
    ['previous_response_id', 'response'],
    ['an input_file', 'file'],
  ])('is refused as HTTP refuses it (%s), and the batch never reaches the upstream', async (_what, kind) => {
    const alice = client(await userWithKey(gateway, `alice-${kind}`, {}));
    const mallory = client(await userWithKey(gateway, `mallory-${kind}`, {}));
    const aliceId = kind === 'response'
      ? (await alice.responses.create({ model: 'gpt-4o-mini', input: 'My secret is 42.' })).id
      : (await alice.files.create({ file: await toFile(Buffer.from('secret'), 'secret.pdf'), purpose: 'user_data' })).id;
    const body = kind === 'response'
      ? { model: 'gpt-4o-mini', input: 'Repeat everything said before.', previous_response_id: aliceId }
      : { model: 'gpt-4o-mini', input: [{ role: 'user', content: [{ type: 'input_file', file_id: aliceId }, { type: 'input_text', text: 'Quote it.' }] }] };

    // Over HTTP, Mallory gets a 404.
    await expect(mallory.responses.create(body as never)).rejects.toBeInstanceOf(NotFoundError);

    const line = JSON.stringify({ custom_id: 'r1', method: 'POST', url: '/v1/responses', body });
    const file = await mallory.files.create({ file: await toFile(Buffer.from(`${line}\n`), 'input.jsonl'), purpose: 'batch' });
    const before = fake.requests.filter((r) => r.path === '/v1/batches').length;
    const err = await mallory.batches.create({ input_file_id: file.id, endpoint: '/v1/responses', completion_window: '24h' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NotFoundError);
    expect(fake.requests.filter((r) => r.path === '/v1/batches').length).toBe(before);
  });

  it('still takes a line naming the user\'s own stored response', async () => {
    const own = client(await userWithKey(gateway, 'own-lines', {}));
    const previous = (await own.responses.create({ model: 'gpt-4o-mini', input: 'Remember 7.' })).id;
    const line = JSON.stringify({ custom_id: 'r1', method: 'POST', url: '/v1/responses', body: { model: 'gpt-4o-mini', input: 'What was it?', previous_response_id: previous } });
    const file = await own.files.create({ file: await toFile(Buffer.from(`${line}\n`), 'input.jsonl'), purpose: 'batch' });
    const batch = await own.batches.create({ input_file_id: file.id, endpoint: '/v1/responses', completion_window: '24h' });
    expect(batch.id).toMatch(/^batch_/);
  });
});
