// A batch's input file is uploaded before the batch is created, as any file is, and the upstream
// runs it as uploaded: the gateway cannot send a line's alias as its target there. A line that
// names an alias is refused when the batch is created, with a 400 naming the line; nothing reaches
// the upstream's batch route and nothing is reserved. The target itself stays refused to a user
// allowed only the alias (docs/models.md, "Batches").
import OpenAI, { BadRequestError } from 'openai';
import { toFile } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-alias-batch-1';

let fake: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  registerPoolKey(POOL_KEY);
  fake = await startFakeUpstream({ keys: [POOL_KEY] });
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl }, config: { aliases: { fast: 'gpt-4o-mini' } } });
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});
beforeEach(() => fake.reset());

const line = (i: number, model: string) =>
  JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model, messages: [{ role: 'user', content: 'Hi' }] } });

async function batchOf(userId: string, models: string[], jsonl: string) {
  const key = await gateway.createUserKey(userId, { models });
  registerSecret(key, `user key of ${userId}`);
  const client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0 });
  const file = await client.files.create({ file: await toFile(Buffer.from(jsonl), 'input.jsonl'), purpose: 'batch' });
  return client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }).then(
    (batch) => ({ batch, error: undefined }),
    (error: unknown) => ({ batch: undefined, error: error as BadRequestError & { error: { message: string; code: string; param: string } } }),
  );
}

describe('a batch input file that names an alias', () => {
  it('is refused with a 400 naming the line, before the upstream sees the batch', async () => {
    const { error } = await batchOf('batch-alias-1', ['fast', 'gpt-4o-mini'], `${line(1, 'gpt-4o-mini')}\n${line(2, 'fast')}\n`);
    expect(error).toBeInstanceOf(BadRequestError);
    expect(error?.status).toBe(400);
    expect(error?.error).toMatchObject({ code: 'model_not_allowed', param: 'input_file_id' });
    expect(error?.error.message).toMatch(/^Line 2 of the input file names the model "fast", an alias/);
    // The alias's target is not told.
    expect(error?.error.message).not.toContain('gpt-4o-mini');
    expect(fake.requests.filter((r) => r.path === '/v1/batches')).toHaveLength(0);
    const usage = (await gateway.admin('GET', '/users/batch-alias-1')).json.usage;
    expect(usage.day).toMatchObject({ tokens: 0, reservedTokens: 0 });
  });

  it('refuses the target to a user allowed only the alias', async () => {
    const { error } = await batchOf('batch-alias-2', ['fast'], `${line(1, 'gpt-4o-mini')}\n`);
    expect(error?.error).toMatchObject({ code: 'model_not_allowed' });
    expect(error?.error.message).toContain('this key may not use the model "gpt-4o-mini"');
    expect(fake.requests.filter((r) => r.path === '/v1/batches')).toHaveLength(0);
  });

  it('is created when every line names the upstream model', async () => {
    const { batch, error } = await batchOf('batch-alias-3', ['gpt-4o-mini'], `${line(1, 'gpt-4o-mini')}\n${line(2, 'gpt-4o-mini')}\n`);
    expect(error).toBeUndefined();
    expect(batch?.id).toBeTruthy();
    expect(fake.requests.filter((r) => r.path === '/v1/batches')).toHaveLength(1);
  });
});
