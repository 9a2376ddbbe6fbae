// docs/reliability.md, case 12: a 401, a 403 about the key itself (its region) or 429 insufficient_quota disable the key (the request goes on to
// another), a probe by a real request brings it back once it works again, and an upstream error
// text that carries key material never reaches the client as it was.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { invalidKeyBody } from '../src/dev/fake-upstream.js';
import { CHAT, type PoolFixture, openaiError, poolSecret, startPool } from './helpers/pool-fixture.js';

// Probes come 1.5 to 3 s after the key was disabled (half to all of the base, jittered): soon
// enough to wait for, late enough that a busy machine does not make one due between two steps.
const SHORT_PROBES = { pool: { health: { probeBaseMs: 3000, probeMaxMs: 3000 } } as Config['pool'] };

let pool: PoolFixture;
beforeEach(async () => {
  pool = await startPool({ keys: ['a', 'b'], config: SHORT_PROBES });
});
afterEach(() => pool.close());

describe.each([
  ['401 invalid_api_key', 401, invalidKeyBody(`Bearer ${poolSecret('a')}`), 'invalid_api_key'],
  // A 403 about the key itself; one about the request (a model it may not use) leaves it healthy:
  // test/hostile-pool-key-verdicts.test.ts.
  ['403 unsupported region', 403, openaiError('Country, region, or territory not supported', 'request_forbidden', 'unsupported_country_region_territory'), 'forbidden'],
  ['429 insufficient_quota', 429, openaiError('You exceeded your current quota, please check your plan and billing details.', 'insufficient_quota', 'insufficient_quota'), 'insufficient_quota'],
  ['401 account_deactivated', 401, openaiError('This key is associated with a deactivated account.', 'invalid_request_error', 'account_deactivated'), 'account_deactivated'],
])('an upstream %s', (_name, status, body, reason) => {
  it('disables the key and serves the request with another', async () => {
    pool.script('a', { status, body });
    const answer = await pool.post('/chat/completions', CHAT);
    expect(answer.status).toBe(200);
    expect(pool.keysUsed()).toEqual(['a', 'b']);
    expect(await pool.poolKey('a')).toMatchObject({ state: 'disabled', reason, until: expect.any(String), failures: 1 });
    expect(await pool.charged()).toMatchObject({ requests: 1, reservedTokens: 0 });
  });

  it('probes the key with a real request later, and takes it back when that works', async () => {
    pool.script('a', { status, body });
    expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
    const disabled = await pool.poolKey('a');
    // While disabled, the key takes nothing.
    expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
    expect(pool.keysUsed()).toEqual(['a', 'b', 'b']);

    // The key's account is fixed; the probe is due.
    pool.fake.reset();
    await sleep(Math.max(0, Date.parse(disabled.until) - Date.now()) + 20);
    expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
    expect(pool.keysUsed()).toEqual(['a']);
    expect(await pool.poolKey('a')).toMatchObject({ state: 'active', reason: null, until: null });
  });
});

it('probes a key that still fails later again, for longer, and the request still gets its answer', async () => {
  pool.script('a', { status: 401, body: invalidKeyBody(`Bearer ${poolSecret('a')}`) });
  expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  const first = await pool.poolKey('a');
  await sleep(Math.max(0, Date.parse(first.until) - Date.now()) + 20);
  expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  expect(pool.keysUsed()).toEqual(['a', 'b', 'a', 'b']);
  const second = await pool.poolKey('a');
  expect(second).toMatchObject({ state: 'disabled', reason: 'invalid_api_key' });
  expect(Date.parse(second.until)).toBeGreaterThan(Date.parse(first.until));
});

it('masks the key material of the upstream error the client gets when no key works', async () => {
  for (const id of ['a', 'b']) {
    pool.script(id, {
      status: 401,
      body: openaiError(`Incorrect API key provided: ${poolSecret(id)}. You can find your API key at https://platform.openai.com/account/api-keys.`, 'invalid_request_error', 'invalid_api_key'),
    });
  }
  const answer = await pool.post('/chat/completions', CHAT);
  expect(answer.status).toBe(401);
  expect(answer.json).toEqual(
    openaiError('Incorrect API key provided: sk-***mnBx. You can find your API key at https://platform.openai.com/account/api-keys.', 'invalid_request_error', 'invalid_api_key'),
  );
  expect(answer.headers.get('content-length')).toBe(String(Buffer.byteLength(answer.text)));
  expect(await pool.charged()).toMatchObject({ requests: 0, tokens: 0, reservedTokens: 0 });
});
