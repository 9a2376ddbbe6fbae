// GET /v1/models lists, for each user, the models they may use, aliases included (models.list:
// merged, the default); with models.list: upstream the upstream's list is relayed as before.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-alias-list-1';
// The fake upstream lists gpt-4o-mini, gpt-4o, gpt-4.1, text-embedding-3-small, tts-1, whisper-1.
const UPSTREAM_IDS = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1', 'text-embedding-3-small', 'tts-1', 'whisper-1'];
const ALIASES = { fast: 'gpt-4o-mini', smart: 'gpt-4o', voice: 'tts-1', elsewhere: 'not-listed-model' };

async function listFor(relay: RelayFixture, userId: string, user: Record<string, unknown> = {}): Promise<{ status: number; body: any }> {
  const key = await relay.gateway.createUserKey(userId, user);
  registerSecret(key);
  const res = await fetch(`${relay.gateway.baseUrl}/models`, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, body: await res.json() };
}

describe('models.list: merged (the default)', () => {
  let relay: RelayFixture;
  beforeAll(async () => {
    relay = await startRelay(POOL_KEY, { keys: [POOL_KEY] }, { aliases: ALIASES });
  });
  afterAll(() => relay.close());

  it('lists exactly the models a restricted user may use, aliases included, in OpenAI\'s shape', async () => {
    const { status, body } = await listFor(relay, 'restricted', { models: ['fast', 'gpt-4.1', 'voice', 'whisper-*'] });
    expect(status).toBe(200);
    expect(body.object).toBe('list');
    expect(body.data.map((m: { id: string }) => m.id).sort()).toEqual(['fast', 'gpt-4.1', 'voice', 'whisper-1']);
    // An alias takes its target's `created` and `owned_by`, even when the target itself is hidden.
    expect(body.data.find((m: { id: string }) => m.id === 'fast')).toEqual({ id: 'fast', object: 'model', created: 1715367049, owned_by: 'system' });
  });

  it('lists everything and every alias to a user without a model list, through the SDK', async () => {
    const key = await relay.gateway.createUserKey('unrestricted');
    registerSecret(key);
    const client = new OpenAI({ baseURL: relay.gateway.baseUrl, apiKey: key, maxRetries: 0 });
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids.sort()).toEqual([...UPSTREAM_IDS, ...Object.keys(ALIASES)].sort());
    const listed = await client.models.list();
    // An alias whose target the upstream does not list still has an entry of the right shape.
    expect(listed.data.find((m) => m.id === 'elsewhere')).toEqual({ id: 'elsewhere', object: 'model', created: 0, owned_by: 'keyrelay' });
  });

  it('lists no alias to a user allowed only targets', async () => {
    const { body } = await listFor(relay, 'targets-only', { models: ['gpt-4o', 'gpt-4o-mini'] });
    expect(body.data.map((m: { id: string }) => m.id).sort()).toEqual(['gpt-4o', 'gpt-4o-mini']);
  });
});

describe('models.list: upstream', () => {
  let relay: RelayFixture;
  beforeAll(async () => {
    relay = await startRelay(POOL_KEY, { keys: [POOL_KEY] }, { aliases: ALIASES, models: { list: 'upstream' } } as Partial<Config>);
  });
  afterAll(() => relay.close());

  it("relays the upstream's list byte for byte to a user without a model list", async () => {
    const key = await relay.gateway.createUserKey('passthrough');
    registerSecret(key);
    const res = await fetch(`${relay.gateway.baseUrl}/models`, { headers: { authorization: `Bearer ${key}` } });
    const direct = await fetch(`${relay.fake.baseUrl}/models`, { headers: { authorization: `Bearer ${POOL_KEY}` } });
    expect(await res.text()).toBe(await direct.text());
  });

  it('shows a restricted user the upstream models they may use, and no alias', async () => {
    const { body } = await listFor(relay, 'passthrough-restricted', { models: ['fast', 'gpt-4.1'] });
    expect(body.data.map((m: { id: string }) => m.id)).toEqual(['gpt-4.1']);
  });
});
