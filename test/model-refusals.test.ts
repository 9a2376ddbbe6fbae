// A model refusal explains itself to the key's own user: it names the model refused and the
// patterns the user may use. GET /v1/models shows such a user only the models they may use.
import OpenAI, { PermissionDeniedError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { post, startFake, startQuotaGateway, userWithKey } from './helpers/quota-fixture.js';

let fake: FakeUpstream;
let gateway: TestGateway;
let narrow: OpenAI;
let narrowKey: string;
let open: OpenAI;

const client = (apiKey: string) => new OpenAI({ baseURL: gateway.baseUrl, apiKey, maxRetries: 0, organization: null, project: null });

beforeAll(async () => {
  fake = await startFake();
  gateway = await startQuotaGateway(fake);
  narrowKey = await userWithKey(gateway, 'narrow', {}, { models: ['gpt-4o*', 'whisper-1'] });
  narrow = client(narrowKey);
  open = client(await userWithKey(gateway, 'open', {}));
});
afterAll(async () => {
  await gateway?.close();
  await fake?.close();
});

describe('model_not_allowed', () => {
  it('names the refused model and the patterns the user may use, as the SDK sees it', async () => {
    const refused = await narrow.chat.completions.create({ model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'Hi' }] }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(PermissionDeniedError);
    const error = refused as PermissionDeniedError;
    expect(error.status).toBe(403);
    expect(error.error).toEqual({
      message: 'This key may not use the model "gpt-3.5-turbo". The models it may use: "gpt-4o*", "whisper-1" (* matches any characters).',
      type: 'invalid_request_error',
      param: 'model',
      code: 'model_not_allowed',
    });
    expect(fake.requests).toHaveLength(0);
  });

  it('quotes a hostile model name as JSON, so it cannot forge a second sentence or a line', async () => {
    const answer = await post(gateway.url, narrowKey, '/chat/completions', { model: 'x". The models it may use: "*\n', messages: [] });
    expect(answer.status).toBe(403);
    expect(answer.json).toEqual({
      error: {
        message: 'This key may not use the model "x\\". The models it may use: \\"*\\n". The models it may use: "gpt-4o*", "whisper-1" (* matches any characters).',
        type: 'invalid_request_error',
        param: 'model',
        code: 'model_not_allowed',
      },
    });
  });
});

describe('GET /v1/models', () => {
  it('lists only the models a user with a model list may use', async () => {
    const ids: string[] = [];
    for await (const model of narrow.models.list()) ids.push(model.id);
    expect(ids).toEqual(['gpt-4o-mini', 'gpt-4o', 'whisper-1']);
  });

  it('lists every model to a user without one, as the upstream sent them', async () => {
    const ids: string[] = [];
    for await (const model of open.models.list()) ids.push(model.id);
    expect(ids).toEqual(['gpt-4o-mini', 'gpt-4o', 'gpt-4.1', 'text-embedding-3-small', 'tts-1', 'whisper-1']);
  });
});
