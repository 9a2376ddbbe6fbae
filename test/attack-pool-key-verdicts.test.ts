// Hostile review: a user still disables healthy pool keys with requests the keys may not make.
// Each case is a request any ordinary user may send, answered by the fake upstream as OpenAI answers
// it to a healthy project key; the keys must stay active (the answer is the client's, not the key's).
import { afterEach, beforeEach, expect, it } from 'vitest';
import { type PoolFixture, openaiError, startPool } from './helpers/pool-fixture.js';

const KEYS = ['a', 'b', 'c'];

let pool: PoolFixture;
beforeEach(async () => {
  pool = await startPool({ keys: KEYS });
});
afterEach(() => pool.close());

async function expectEveryKeyActive(): Promise<void> {
  for (const id of KEYS) expect(await pool.poolKey(id)).toMatchObject({ state: 'active' });
}

it('a gpt-image-1 request on an organization that is not verified (403, code null) disables no key', async () => {
  // OpenAI's answer to a healthy key of an unverified organization (openai-php/client#565).
  const unverified = openaiError(
    'Your organization must be verified to use the model `gpt-image-1`. Please go to: https://platform.openai.com/settings/organization/general and click on Verify Organization. If you just verified, it can take up to 15 minutes for access to propagate.',
    'invalid_request_error',
    null,
  );
  for (const id of KEYS) pool.script(id, (req) => (req.path === '/v1/images/generations' ? { status: 403, body: unverified } : undefined));

  const refused = await pool.post('/images/generations', { model: 'gpt-image-1', prompt: 'a cat' });
  expect(refused.status).toBe(403);

  await expectEveryKeyActive();
  expect((await pool.post('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 })).status).toBe(200);
});

it('the admin-key-only checkpoint permissions route (spec: "requires an admin API key") disables no key', async () => {
  // The table marks it ApiKey, but OpenAI refuses it to project keys as it refuses /v1/organization/*.
  const path = '/v1/fine_tuning/checkpoints/ft-AF1WoRqd3aJAHsqc9NY7iL8F/permissions';
  for (const id of KEYS) {
    pool.script(id, (req) => (req.path === path ? { status: 403, body: openaiError('You are not allowed to do this.', 'invalid_request_error', null) } : undefined));
  }

  const refused = await pool.get('/fine_tuning/checkpoints/ft-AF1WoRqd3aJAHsqc9NY7iL8F/permissions');
  expect(refused.status).toBe(403);
  // An admin key's operation: the gateway refuses it itself, as it refuses /v1/organization/*.
  expect(refused.json.error.code).toBe('route_not_allowed');

  await expectEveryKeyActive();
  expect(pool.keysUsed()).toHaveLength(0);
});
