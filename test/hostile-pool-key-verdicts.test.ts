// A user cannot take the pool down with requests its keys may not make. An upstream 401 or 403 that
// refuses one operation to a key (a scope it lacks, a route for admin keys) is the client's answer:
// the key stays active, no other key is tried, /readyz stays ready and the next request works. A
// 401 or 403 that says the key is dead (invalid_api_key or a bare 401 on an ordinary route,
// account_deactivated anywhere) still disables the key and sends the request on to another.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import type { FakeResponse, RecordedRequest } from '../src/dev/fake-upstream.js';
import { invalidKeyBody } from '../src/dev/fake-upstream.js';
import { type Answer, CHAT, type PoolFixture, openaiError, poolSecret, startPool } from './helpers/pool-fixture.js';

const KEYS = ['a', 'b', 'c'];
// The admin-key routes are refused to users by default; these tests are about what reaches the upstream.
const ORGANIZATION_ROUTES_OPEN: Partial<Config> = { relay: { allowOrganizationRoutes: true } };

// OpenAI's answer to a key without a scope: 401, `code: null`, the scope named in the message.
const missingScopes = (scope: string) =>
  openaiError(
    `You have insufficient permissions for this operation. Missing scopes: ${scope}. Check that you have the correct role in your organization (Reader, Writer, Owner) and project (Member, Owner), and if you're using a restricted API key, that it has the necessary scopes.`,
    'invalid_request_error',
    null,
  );

let pool: PoolFixture;
beforeEach(async () => {
  pool = await startPool({ keys: KEYS, config: ORGANIZATION_ROUTES_OPEN });
});
afterEach(() => pool.close());

type Send = (pool: PoolFixture) => Promise<Answer>;
const costs: Send = (p) => p.get('/organization/costs?start_time=1730419200&limit=1');
const orgUsers: Send = (p) => p.get('/organization/users');
const models: Send = (p) => p.get('/models');

type Body = (req: RecordedRequest) => FakeResponse['body'];

/** Answers `status` and `body` to every key, for requests to `path` only. */
function refuseEverywhere(path: string, status: number, body: Body): void {
  for (const id of KEYS) pool.script(id, (req) => (req.path === path ? { status, body: body(req) } : undefined));
}

async function readyz(): Promise<{ status: number; json: { poolKeys: boolean } }> {
  const res = await fetch(`${pool.gateway.url}/readyz`);
  return { status: res.status, json: (await res.json()) as { poolKeys: boolean } };
}

async function expectPoolUntouched(): Promise<void> {
  for (const id of KEYS) expect(await pool.poolKey(id)).toMatchObject({ state: 'active', reason: null, until: null, failures: 0 });
  expect(await readyz()).toMatchObject({ status: 200, json: { poolKeys: true } });
}

describe.each<[string, string, Send, number, Body]>([
  ["401 OpenAI's missing-scope refusal (code null)", '/v1/organization/costs', costs, 401, () => missingScopes('api.usage.read')],
  [
    '401 missing_scope',
    '/v1/organization/costs',
    costs,
    401,
    () => openaiError('You have insufficient permissions for this operation. Missing scopes: api.usage.read.', 'invalid_request_error', 'missing_scope'),
  ],
  ['403 insufficient_permissions', '/v1/organization/users', orgUsers, 403, () => openaiError('You do not have permission to list users.', 'invalid_request_error', 'insufficient_permissions')],
  ['403 without a code on an organization route', '/v1/organization/users', orgUsers, 403, () => openaiError('You are not allowed to do this.', 'invalid_request_error', null)],
  ['401 without a body on an organization route', '/v1/organization/costs', costs, 401, () => ''],
  ['401 invalid_api_key on an organization route', '/v1/organization/costs', costs, 401, (req) => invalidKeyBody(req.headers.authorization)],
  ['401 missing scope on an ordinary route', '/v1/models', models, 401, () => missingScopes('api.model.read')],
])('an upstream %s', (_name, path, send, status, body) => {
  it('reaches the client, masked, from one key, and leaves every key active', async () => {
    refuseEverywhere(path, status, body);
    const refused = await send(pool);

    expect(pool.keysUsed()).toHaveLength(1);
    expect(refused.status).toBe(status);
    for (const id of KEYS) expect(refused.text).not.toContain(poolSecret(id));
    const sent = body(pool.fake.requests[0] as RecordedRequest);
    if (sent === '') expect(refused.text).toBe('');
    else {
      const { error } = sent as { error: { message: string } };
      // The invalid_api_key body quotes the key's first and last characters: the gateway masks them.
      expect(refused.json).toEqual({ error: { ...error, message: error.message.replace(/sk-\*+(\w{4})/, 'sk-***$1') } });
    }
    await expectPoolUntouched();
  });

  it('a user sending it again and again leaves the pool serving', async () => {
    refuseEverywhere(path, status, body);
    for (let i = 0; i < KEYS.length * 2; i++) expect((await send(pool)).status).toBe(status);
    expect(pool.keysUsed()).toHaveLength(KEYS.length * 2);

    await expectPoolUntouched();
    expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  });
});

describe('an upstream 403 model_not_found', () => {
  it('goes on to the other keys, whose projects may have the model, and disables none', async () => {
    const lacking = { ...CHAT, model: 'gpt-4o-lacking' };
    const notFound = openaiError('The model `gpt-4o-lacking` does not exist or you do not have access to it.', 'invalid_request_error', 'model_not_found');
    for (const id of KEYS) pool.script(id, (req) => ((req.json as { model?: string } | undefined)?.model === lacking.model ? { status: 403, body: notFound } : undefined));

    const refused = await pool.post('/chat/completions', lacking);
    expect(refused.status).toBe(403);
    expect(refused.json).toEqual(notFound);
    expect(new Set(pool.keysUsed())).toEqual(new Set(KEYS));

    await expectPoolUntouched();
    expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  });
});

describe.each<[string, (id: string) => FakeResponse, string]>([
  ['401 invalid_api_key', (id) => ({ status: 401, body: invalidKeyBody(`Bearer ${poolSecret(id)}`) }), 'invalid_api_key'],
  ['401 without a body', () => ({ status: 401, body: '' }), 'invalid_api_key'],
  ['401 account_deactivated', () => ({ status: 401, body: openaiError('This key is associated with a deactivated account.', 'invalid_request_error', 'account_deactivated') }), 'account_deactivated'],
])('an upstream %s on /v1/chat/completions: the key is dead', (_name, answer, reason) => {
  it('disables the key and serves the request with the next one', async () => {
    pool.script('a', answer('a'));
    expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
    expect(pool.keysUsed()).toEqual(['a', 'b']);
    expect(await pool.poolKey('a')).toMatchObject({ state: 'disabled', reason, failures: 1 });
    expect(await pool.poolKey('b')).toMatchObject({ state: 'active', failures: 0 });
  });
});

it('an upstream 401 account_deactivated on an organization route disables the key there too', async () => {
  pool.script('a', { status: 401, body: openaiError('This key is associated with a deactivated account.', 'invalid_request_error', 'account_deactivated') });
  pool.script('b', (req) => (req.path === '/v1/organization/costs' ? { status: 200, body: { object: 'page', data: [], has_more: false, next_page: null } } : undefined));
  const answer = await costs(pool);
  expect(answer.status).toBe(200);
  expect(pool.keysUsed()).toEqual(['a', 'b']);
  expect(await pool.poolKey('a')).toMatchObject({ state: 'disabled', reason: 'account_deactivated' });
});
