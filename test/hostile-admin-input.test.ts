// The admin API takes what it documents and refuses the rest with a 400 naming the field: no type
// is coerced ("12" is no number, `true` no 1, a string no list), an unknown field is named, not
// dropped, `null` means "none" (no limit, no name, any model), limits are whole numbers (dollars
// excepted) the ledger's arithmetic holds exactly, and a query's range is checked before any work
// is done for it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amount } from '../src/cli/options.js';
import { LIMIT_MAXIMUM, MAX_USD_LIMIT } from '../src/quota/amounts.js';
import type { TestGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { type ObservedGateway, chat, post, startObservedGateway } from './helpers/observability-fixture.js';

const POOL_KEY = 'sk-pool-hostile-admin-input-0001';

/** The 400 the admin API answers, with the field it names. */
function refusal(param: string, message: RegExp | string = /./) {
  return { status: 400, json: { error: { message: expect.stringMatching(message), type: 'invalid_request_error', param, code: 'invalid_request' } } };
}

describe('admin input on the memory store', () => {
  let env: ObservedGateway;
  let gateway: TestGateway;
  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, 'memory');
    gateway = env.gateway;
    expect((await gateway.admin('POST', '/users', { id: 'holder', name: 'Holder', models: ['gpt-4o-mini'], limits: { rpm: 60 } })).status).toBe(201);
  });
  afterAll(() => env.close());

  it('refuses a usage span of ten thousand years before building it, while /healthz answers', async () => {
    // Measured in CPU time, not wall time: other work on the machine cannot make this fail.
    // Building the 3.65 M day strings took about 5 s of CPU; the check alone takes microseconds.
    const cpu = process.cpuUsage();
    const [usage, health] = await Promise.all([gateway.admin('GET', '/usage?from=0000-01-01&to=9999-12-31'), fetch(`${gateway.url}/healthz`)]);
    const spent = process.cpuUsage(cpu);
    expect(usage).toEqual(refusal('from', 'At most 400 days at once'));
    expect(health.status).toBe(200);
    expect((spent.user + spent.system) / 1000).toBeLessThan(1000);
    // A full time past the year 9999 (by its offset) is a span like any other.
    expect(await gateway.admin('GET', '/usage?from=0000-01-01&to=9999-12-31T23:00:00-05:00')).toEqual(refusal('from', 'At most 400 days at once'));
    expect(await gateway.admin('GET', '/usage?from=2021-02-30')).toEqual(refusal('from'));
  });

  it('null is no limit: on create it is absent, on update it removes the limit, and the user is not blocked', async () => {
    const created = await gateway.admin('POST', '/users', { id: 'nulls', name: null, models: null, expiresAt: null, limits: { rpm: null, tokensPerDay: 100_000 } });
    expect(created.status).toBe(201);
    expect(created.json).toEqual({ id: 'nulls', limits: { tokensPerDay: 100_000 }, createdAt: expect.any(String) });
    const patched = await gateway.admin('PATCH', '/users/nulls', { limits: { rpm: null, tpm: null, usdPerDay: null, maxConcurrent: null, tokensPerDay: 50_000 } });
    expect(patched).toEqual({ status: 200, json: { id: 'nulls', limits: { tokensPerDay: 50_000 }, createdAt: created.json.createdAt } });
    const key = (await gateway.admin('POST', '/users/nulls/keys', {})).json.key as string;
    registerSecret(key);
    expect((await post(gateway, key, '/chat/completions', chat('hello'))).status).toBe(200);
  });

  it('null clears the name, the model list and the limits on update', async () => {
    expect((await gateway.admin('POST', '/users', { id: 'cleared', name: 'Named', models: ['gpt-4o'], limits: { rpm: 5 } })).status).toBe(201);
    const patched = await gateway.admin('PATCH', '/users/cleared', { name: null, models: null, limits: null, expiresAt: null });
    expect(patched.status).toBe(200);
    expect(patched.json).toEqual({ id: 'cleared', limits: {}, createdAt: expect.any(String) });
    expect((await gateway.admin('GET', '/users/cleared')).json).toMatchObject({ id: 'cleared', limits: {} });
    expect((await gateway.admin('GET', '/users/cleared')).json.name).toBeUndefined();
  });

  const REFUSED: Array<[string, Record<string, unknown>, string]> = [
    ['a number given as a string', { limits: { rpm: '12' } }, 'limits.rpm'],
    ['a boolean as a number', { limits: { rpm: true } }, 'limits.rpm'],
    ['a dollar amount as a string', { limits: { usdPerDay: '5' } }, 'limits.usdPerDay'],
    ['1e300 tokens', { limits: { tokensPerDay: 1e300 } }, 'limits.tokensPerDay'],
    ['2^53 tokens, past exact integers', { limits: { tokensPerMonth: 2 ** 53 } }, 'limits.tokensPerMonth'],
    ['more tokens than the ledger counts', { limits: { tokensPerDay: LIMIT_MAXIMUM.tokensPerDay + 1 } }, 'limits.tokensPerDay'],
    ['an rpm above the bucket bound', { limits: { rpm: LIMIT_MAXIMUM.rpm + 1 } }, 'limits.rpm'],
    ['a fraction of a token', { limits: { tokensPerDay: 1.5 } }, 'limits.tokensPerDay'],
    ['a negative limit', { limits: { maxConcurrent: -1 } }, 'limits.maxConcurrent'],
    ['more dollars than micro-dollars can count exactly', { limits: { usdPerMonth: MAX_USD_LIMIT + 1 } }, 'limits.usdPerMonth'],
    ['a model list given as a string', { models: 'gpt-4o' }, 'models'],
    ['a number as a name', { name: 12 }, 'name'],
    ['a number as a time', { expiresAt: 5 }, 'expiresAt'],
    ['an unknown field', { nmae: 'typo' }, 'nmae'],
    ['an unknown limit', { limits: { rpn: 5 } }, 'limits.rpn'],
  ];

  it.each(REFUSED)('refuses %s, naming the field, and changes nothing', async (_what, body, param) => {
    const before = (await gateway.admin('GET', '/users/holder')).json;
    const name = param.split('.').pop() ?? param;
    expect(await gateway.admin('PATCH', '/users/holder', body)).toEqual(refusal(param, name));
    expect(await gateway.admin('POST', '/users', { id: 'never-made', ...body })).toEqual(refusal(param, name));
    expect((await gateway.admin('GET', '/users/holder')).json).toEqual(before);
    expect((await gateway.admin('GET', '/users/never-made')).status).toBe(404);
  });

  it('names every unknown field, and refuses one on a new key', async () => {
    expect(await gateway.admin('PATCH', '/users/holder', { nmae: 'x', modles: [] })).toEqual(refusal('nmae', /`nmae`, `modles`/));
    expect(await gateway.admin('POST', '/users/holder/keys', { name: 'k', expires: '2030-01-01T00:00:00Z' })).toEqual(refusal('expires', '`expires`'));
  });

  it('takes the largest limits the ledger holds exactly, and dollars in cents', async () => {
    const limits = { rpm: LIMIT_MAXIMUM.rpm, tpm: LIMIT_MAXIMUM.tpm, tokensPerDay: LIMIT_MAXIMUM.tokensPerDay, tokensPerMonth: LIMIT_MAXIMUM.tokensPerMonth, usdPerDay: 0.25, usdPerMonth: MAX_USD_LIMIT, maxConcurrent: 0 };
    expect(await gateway.admin('PATCH', '/users/holder', { limits })).toMatchObject({ status: 200, json: { limits } });
  });

  it('the CLI refuses the dollar limits the API refuses, before sending them', () => {
    expect(amount({ 'usd-per-day': String(MAX_USD_LIMIT) }, 'usd-per-day')).toBe(MAX_USD_LIMIT);
    expect(() => amount({ 'usd-per-day': String(MAX_USD_LIMIT + 1) }, 'usd-per-day')).toThrow(`--usd-per-day: at most ${MAX_USD_LIMIT} US dollars`);
  });

  it('refuses unknown query parameters and a page size that is not a plain number', async () => {
    expect(await gateway.admin('GET', '/requests?limt=5')).toEqual(refusal('limt', '`limt`'));
    expect(await gateway.admin('GET', '/usage?form=2030-01-01')).toEqual(refusal('form', '`form`'));
    expect(await gateway.admin('GET', '/requests/export?usr=alice')).toEqual(refusal('usr', '`usr`'));
    for (const limit of ['abc', '1e2', '0', '1001', '5.0', ' 5']) {
      expect(await gateway.admin('GET', `/requests?limit=${encodeURIComponent(limit)}`)).toEqual(refusal('limit'));
    }
    expect((await gateway.admin('GET', '/requests?limit=1000')).status).toBe(200);
  });
});

describe.each(['memory', 'redis'] as const)('the request log cursor on %s', (backend) => {
  let env: ObservedGateway;
  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, backend);
  });
  afterAll(() => env.close());

  it.each(['0-0', '00-000', '1970-01-01T00:00:00Z'])('before=%s, before which nothing can be, is a 400 naming it', async (cursor) => {
    expect(await env.gateway.admin('GET', `/requests?before=${cursor}`)).toEqual(refusal('before'));
  });

  it('the first possible id after it is a cursor like any other', async () => {
    expect(await env.gateway.admin('GET', '/requests?before=0-1')).toEqual({ status: 200, json: { data: [], next: null, nextBefore: null, hasMore: false } });
  });
});
