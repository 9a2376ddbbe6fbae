// The pool in the admin API (README, "The key pool"): GET /admin/upstreams shows each upstream and pool key
// (id, last 4 characters, state, until, reason, in flight, counts; never the key), and
// POST .../enable and .../disable control a key by hand; /readyz follows the usable keys.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CHAT, type PoolFixture, poolSecret, startPool } from './helpers/pool-fixture.js';

let pool: PoolFixture;
beforeAll(async () => {
  pool = await startPool({ keys: ['a', 'b'], strategy: 'weighted' });
});
afterAll(() => pool.close());

const key = (id: string, fields: Record<string, unknown> = {}) => ({
  id,
  source: 'settings',
  last4: poolSecret(id).slice(-4),
  weight: 1,
  models: null,
  organization: null,
  project: null,
  proxy: null,
  state: 'active',
  until: null,
  reason: null,
  inFlight: 0,
  requests: 0,
  failures: 0,
  consecutiveFailures: 0,
  ...fields,
});

it('lists each upstream and pool key, without the secret', async () => {
  expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  const answer = await pool.gateway.admin('GET', '/upstreams');
  expect(answer.status).toBe(200);
  expect(answer.json).toEqual({
    data: [
      { id: 'main', source: 'settings', kind: 'openai', baseUrl: pool.fake.baseUrl, models: ['*'], strategy: 'weighted', proxy: null, aliases: {}, keys: [key('a', { requests: 1 }), key('b')] },
    ],
  });
  expect(JSON.stringify(answer.json)).not.toContain(poolSecret('a').slice(0, 12));
});

it('takes a key out by hand until it is enabled again', async () => {
  const disabled = await pool.gateway.admin('POST', '/upstreams/main/keys/a/disable');
  expect(disabled).toEqual({ status: 200, json: { upstream: 'main', ...key('a', { state: 'disabled', reason: 'manual', requests: 1 }) } });
  pool.fake.reset();
  for (let i = 0; i < 3; i++) expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  expect(pool.keysUsed()).toEqual(['b', 'b', 'b']);

  const enabled = await pool.gateway.admin('POST', '/upstreams/main/keys/a/enable');
  expect(enabled).toEqual({ status: 200, json: { upstream: 'main', ...key('a', { requests: 1 }) } });
  pool.fake.reset();
  for (let i = 0; i < 2; i++) expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  expect(pool.keysUsed()).toContain('a');
});

it('answers 404 for a key or upstream it does not have', async () => {
  for (const path of ['/upstreams/main/keys/zz/disable', '/upstreams/other/keys/a/enable']) {
    const answer = await pool.gateway.admin('POST', path);
    expect(answer, path).toEqual({ status: 404, json: { error: { message: 'No pool key with that id.', type: 'invalid_request_error', param: null, code: 'not_found' } } });
  }
});

it('is not ready while no key is usable', async () => {
  const ready = async () => (await fetch(`${pool.gateway.url}/readyz`)).status;
  expect(await ready()).toBe(200);
  for (const id of ['a', 'b']) await pool.gateway.admin('POST', `/upstreams/main/keys/${id}/disable`);
  expect(await ready()).toBe(503);
  await pool.gateway.admin('POST', '/upstreams/main/keys/b/enable');
  expect(await ready()).toBe(200);
});

it('needs the admin token', async () => {
  const res = await fetch(`${pool.gateway.url}/admin/upstreams`, { headers: { authorization: `Bearer ${pool.userKey}` } });
  expect(res.status).toBe(401);
});
