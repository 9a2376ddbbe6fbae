// Key problems an admin can diagnose: a client without a key gets OpenAI's own wording, every other
// bad key the one 401; the request's log line says why (and whose, when known). An expiry already
// past is refused on a create unless asked for; a dollar limit warns of models without a price.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-key-diagnosis-000000001';
registerSecret(POOL_KEY);
registerSecret(ADMIN_TOKEN);

const NO_KEY = {
  error: {
    message:
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). Keys of this gateway start with sk-kr- and are issued by its administrator.",
    type: 'invalid_request_error',
    param: null,
    code: 'invalid_api_key',
  },
};
const BAD_KEY = {
  error: { message: 'Incorrect API key provided. Use a key issued by this keyrelay gateway.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
};

let fake: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  fake = await startFakeUpstream({ keys: [POOL_KEY] });
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
});
afterAll(async () => {
  await gateway?.close();
  await fake?.close();
});

async function models(headers: Record<string, string>) {
  const res = await fetch(`${gateway.baseUrl}/models`, { headers });
  const requestId = res.headers.get('x-keyrelay-request-id') as string;
  return { status: res.status, json: await res.json(), requestId };
}

/** The request's log line, once written (it is written when the answer ends). */
async function lineOf(requestId: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const line = gateway.logs.find((l) => l.msg === 'request' && l.requestId === requestId);
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no log line for ${requestId}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function cli(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: { KEYRELAY_URL: gateway.url, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN },
  });
  return { code, stdout, stderr };
}

describe('a request without a key', () => {
  it("gets OpenAI's own wording, with the gateway's code, and its line says so", async () => {
    const answer = await models({});
    expect(answer.status).toBe(401);
    expect(answer.json).toEqual(NO_KEY);
    expect(await lineOf(answer.requestId)).toMatchObject({ status: 401, errorCode: 'invalid_api_key', errorMessage: 'no Authorization header' });
    expect(fake.requests).toHaveLength(0);
  });
});

describe('every other bad key', () => {
  it('gets the one 401, and the log line says why, with the user and key when known', async () => {
    const revoked = await gateway.createUserKey('revoked-user');
    const revokedKeyId = (await gateway.admin('GET', '/users/revoked-user/keys')).json.data[0].id as string;
    await gateway.admin('DELETE', `/keys/${revokedKeyId}`);
    await gateway.admin('POST', '/users', { id: 'late-user' });
    const expiredKey = await gateway.admin('POST', '/users/late-user/keys?allowPast=true', { expiresAt: '2021-06-01T00:00:00Z' });
    await gateway.admin('POST', '/users?allowPast=true', { id: 'gone-by', expiresAt: '2020-01-01T00:00:00Z' });
    const expiredUser = await gateway.admin('POST', '/users/gone-by/keys', {});
    const deleted = await gateway.createUserKey('deleted-user');
    await gateway.admin('DELETE', '/users/deleted-user');
    for (const k of [revoked, expiredKey.json.key, expiredUser.json.key, deleted]) registerSecret(k as string);

    const cases: Array<[string, Record<string, string>, Record<string, unknown>]> = [
      ['Basic auth', { authorization: 'Basic YTpi' }, { errorMessage: 'Authorization is not one Bearer token' }],
      ['a pool-style key', { authorization: 'Bearer sk-proj-0000000000000000' }, { errorMessage: 'not a key of this gateway' }],
      ['an unknown key', { authorization: `Bearer sk-kr-${'Z'.repeat(40)}` }, { errorMessage: 'unknown key' }],
      ['a revoked key', { authorization: `Bearer ${revoked}` }, { errorMessage: 'revoked key', userId: 'revoked-user', keyId: revokedKeyId }],
      ['an expired key', { authorization: `Bearer ${expiredKey.json.key}` }, { errorMessage: 'expired key', userId: 'late-user', keyId: expiredKey.json.id }],
      ['a key of an expired user', { authorization: `Bearer ${expiredUser.json.key}` }, { errorMessage: 'expired user', userId: 'gone-by', keyId: expiredUser.json.id }],
      // Deleting a user deletes their keys: the key is unknown from then on.
      ['a key of a deleted user', { authorization: `Bearer ${deleted}` }, { errorMessage: 'unknown key' }],
    ];
    for (const [name, headers, why] of cases) {
      const answer = await models(headers);
      expect(answer.status, name).toBe(401);
      expect(answer.json, name).toEqual(BAD_KEY);
      const line = await lineOf(answer.requestId);
      expect(line, name).toMatchObject({ status: 401, errorCode: 'invalid_api_key', ...why });
      if (why.userId === undefined) expect(line.userId, name).toBeUndefined();
    }
    expect(fake.requests).toHaveLength(0);
  });
});

describe('an expiry already past, on a create', () => {
  const refused = (what: string, at: string) => ({
    error: {
      message: `\`expiresAt\` ${at} is in the past: the ${what} would be expired from the start. Give a later time, or allowPast=true (keyrelay --allow-past) to create it expired.`,
      type: 'invalid_request_error',
      param: 'expiresAt',
      code: 'invalid_request',
    },
  });

  it('is refused for a user and a key, creating nothing, unless allowPast=true', async () => {
    const user = await gateway.admin('POST', '/users', { id: 'typo', expiresAt: '2020-12-31T00:00:00Z' });
    expect(user).toEqual({ status: 400, json: refused('user', '2020-12-31T00:00:00Z') });
    expect((await gateway.admin('GET', '/users/typo')).status).toBe(404);

    await gateway.admin('POST', '/users', { id: 'keyed' });
    const key = await gateway.admin('POST', '/users/keyed/keys', { expiresAt: '2001-01-01T00:00:00+09:00' });
    expect(key).toEqual({ status: 400, json: refused('key', '2001-01-01T00:00:00+09:00') });
    expect((await gateway.admin('GET', '/users/keyed/keys')).json.data).toEqual([]);

    // A time a second ago is as past as a year ago.
    const justGone = new Date(Date.now() - 1000).toISOString();
    expect((await gateway.admin('POST', '/users/keyed/keys', { expiresAt: justGone })).status).toBe(400);

    const allowed = await gateway.admin('POST', '/users?allowPast=true', { id: 'typo', expiresAt: '2020-12-31T00:00:00Z' });
    expect(allowed.status).toBe(201);
    expect(allowed.json.expiresAt).toBe('2020-12-31T00:00:00Z');
    // A future expiry needs nothing; updating a user to a past expiry (expiring them now) stays allowed.
    expect((await gateway.admin('POST', '/users/keyed/keys', { expiresAt: '2999-01-01T00:00:00Z' })).status).toBe(201);
    expect((await gateway.admin('PATCH', '/users/keyed', { expiresAt: '2020-01-01T00:00:00Z' })).status).toBe(200);
  });

  it('takes allowPast only as "true", and no other query parameter', async () => {
    for (const query of ['allowPast=1', 'allowPast=yes', 'allowPast=true&x=1', 'allow_past=true']) {
      const answer = await gateway.admin('POST', `/users?${query}`, { id: `q-${query.length}`, expiresAt: '2020-01-01T00:00:00Z' });
      expect(answer.status, query).toBe(400);
      expect(answer.json.error.code, query).toBe('invalid_request');
    }
  });

  it('on the command line: refused with the reason, created with --allow-past', async () => {
    const refusedRun = await cli(['users', 'create', 'cli-typo', '--expires-at', '2020-01-01']);
    expect(refusedRun.code).not.toBe(0);
    expect(refusedRun.stderr).toBe(
      'keyrelay: `expiresAt` 2020-01-01T00:00:00.000Z is in the past: the user would be expired from the start. Give a later time, or allowPast=true (keyrelay --allow-past) to create it expired. (invalid_request, HTTP 400)\n',
    );
    const created = await cli(['users', 'create', 'cli-typo', '--expires-at', '2020-01-01', '--allow-past']);
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('Created user cli-typo.');

    const key = await cli(['keys', 'create', 'cli-typo', '--expires-at', '2020-01-01', '--allow-past', '--json']);
    expect(key.code).toBe(0);
    const printed = JSON.parse(key.stdout) as { key: string; expiresAt: string };
    registerSecret(printed.key);
    expect(printed.expiresAt).toBe('2020-01-01T00:00:00.000Z');
    expect((await cli(['keys', 'create', 'cli-typo', '--expires-at', '2020-01-01'])).code).not.toBe(0);
  });
});

describe('a dollar limit over models without a price', () => {
  it('is warned of by the admin API, naming the models, on a create and an update', async () => {
    const created = await gateway.admin('POST', '/users', { id: 'spender', models: ['gpt-4o-mini', 'my-llama', 'llama-*', 'gpt-4o*'], limits: { usdPerDay: 5 } });
    expect(created.status).toBe(201);
    expect(created.json.warnings).toEqual([
      'usdPerDay is set, and these allowed models have no price, so their requests will be refused: "my-llama", "llama-*". Add them under prices: in the settings.',
    ]);
    const anyModel = await gateway.admin('PATCH', '/users/spender', { models: null, limits: { usdPerMonth: 50 } });
    expect(anyModel.json.warnings).toEqual([
      'usdPerMonth is set and the user may use any model: requests for a model without a price (not in the price table nor under prices: in the settings) will be refused.',
    ]);
    // Nothing to warn of: no warnings field at all.
    const priced = await gateway.admin('PATCH', '/users/spender', { models: ['gpt-4o-mini'] });
    expect(priced.status).toBe(200);
    expect('warnings' in priced.json).toBe(false);
    const tokensOnly = await gateway.admin('POST', '/users', { id: 'tokens-only', models: ['my-llama'], limits: { tokensPerDay: 5 } });
    expect('warnings' in tokensOnly.json).toBe(false);
    // The warnings are not stored with the user.
    expect('warnings' in (await gateway.admin('GET', '/users/spender')).json).toBe(false);
  });

  it('is warned of by the command line on stderr, with --json too', async () => {
    const run = await cli(['users', 'create', 'cli-spender', '--models', 'gpt-4o,my-llama', '--usd-per-day', '1', '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ id: 'cli-spender' });
    expect(run.stderr).toBe(
      'keyrelay: warning: usdPerDay is set, and these allowed models have no price, so their requests will be refused: "my-llama". Add them under prices: in the settings.\n',
    );
  });
});
