// An expiry is a real time or nothing: the admin API refuses `expiresAt` values that are not real
// ISO 8601 date-times (a leap second parsed to NaN, and a NaN expiry never passed), and a key
// whose stored expiry cannot be read at all is refused as expired, on every store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyState } from '../src/cli/keys.js';
import { isoTime } from '../src/cli/options.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { digestKey, newGatewayKey } from '../src/keys.js';
import { createMemoryStore } from '../src/store/memory.js';
import { createRedisStore } from '../src/store/redis.js';
import type { Store } from '../src/store/types.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { capturingLogger, registerSecret } from './helpers/log-capture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const POOL_KEY = 'sk-pool-hostile-expiry-000001';
const UNAUTHORIZED = {
  error: { message: 'Incorrect API key provided. Use a key issued by this keyrelay gateway.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
};
const BAD_TIME = {
  error: {
    message: '`expiresAt` must be an ISO 8601 date and time with a time zone, such as 2030-01-31T00:00:00Z.',
    type: 'invalid_request_error',
    param: 'expiresAt',
    code: 'invalid_request',
  },
};
const NOT_TIMES = [
  '2020-12-31T23:59:60Z', // a leap second: JavaScript time has none (Date.parse gives NaN)
  '2099-12-31T23:59:60Z',
  '2021-02-30T00:00:00Z', // Date.parse rolls it over to March 2nd
  '2100-02-29T00:00:00Z', // 2100 is no leap year
  '2030-13-01T00:00:00Z',
  '2030-01-01T24:00:00Z',
  '2030-01-01T00:60:00Z',
  '2030-01-01T00:00:00+24:00',
  '2030-01-01T00:00:00', // no time zone: local to whom?
  '2030-01-01',
  '2030-01-01 00:00:00Z',
  'Tue, 01 Jan 2030 00:00:00 GMT',
  'tomorrow',
];
const TIMES = ['2030-01-31T00:00:00Z', '2032-02-29T12:00:00.123+01:00', '2030-01-31t00:00:00.123456789z', '2030-06-30T23:59:59-07:30'];

let fake: FakeUpstream;
beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
});
afterAll(() => fake.close());

const gatewayOn = (store?: Store) => startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl }, store });

describe('the admin API', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await gatewayOn();
    expect((await gateway.admin('POST', '/users', { id: 'holder' })).status).toBe(201);
  });
  afterAll(() => gateway.close());

  it.each(NOT_TIMES)('refuses %j as expiresAt of a new user, a user update and a new key', async (time) => {
    expect(await gateway.admin('POST', '/users', { id: 'never-made', expiresAt: time })).toEqual({ status: 400, json: BAD_TIME });
    expect(await gateway.admin('PATCH', '/users/holder', { expiresAt: time })).toEqual({ status: 400, json: BAD_TIME });
    expect(await gateway.admin('POST', '/users/holder/keys', { expiresAt: time })).toEqual({ status: 400, json: BAD_TIME });
    expect((await gateway.admin('GET', '/users/never-made')).status).toBe(404);
    expect((await gateway.admin('GET', '/users/holder')).json.expiresAt).toBeUndefined();
    expect((await gateway.admin('GET', '/users/holder/keys')).json.data).toEqual([]);
  });

  it.each(TIMES)('takes %j', async (time) => {
    const id = `timed-${TIMES.indexOf(time)}`;
    expect((await gateway.admin('POST', '/users', { id, expiresAt: time })).status).toBe(201);
    expect((await gateway.admin('PATCH', `/users/${id}`, { expiresAt: time })).status).toBe(200);
    expect((await gateway.admin('POST', `/users/${id}/keys`, { expiresAt: time })).status).toBe(201);
  });

  it('the CLI checks a time as the API does, and shows a key with an unreadable expiry as expired', () => {
    expect(() => isoTime({ 'expires-at': '2020-12-31T23:59:60Z' }, 'expires-at')).toThrow('--expires-at: expected an ISO 8601 time');
    expect(() => isoTime({ 'expires-at': '2021-02-30' }, 'expires-at')).toThrow('--expires-at: expected an ISO 8601 time');
    expect(isoTime({ 'expires-at': '2030-01-31' }, 'expires-at')).toBe('2030-01-31T00:00:00.000Z');
    const key = { id: 'key_1', userId: 'u', prefix: 'sk-kr-abcd', createdAt: '2030-01-01T00:00:00Z' };
    expect(keyState({ ...key, expiresAt: '2020-12-31T23:59:60Z' })).toBe('expired');
    expect(keyState({ ...key, expiresAt: '2099-01-01T00:00:00Z' })).toBe('active');
  });
});

const BACKENDS: Array<[string, () => Promise<{ store: Store; stop(): Promise<void> }>]> = [
  ['memory', async () => ({ store: createMemoryStore(), stop: async () => {} })],
  [
    'redis',
    async () => {
      const server: RedisServer = await startRedis();
      const store = await createRedisStore({ url: server.url, commandTimeoutMs: 2000, log: capturingLogger() });
      return { store, stop: () => server.stop() };
    },
  ],
];

describe.each(BACKENDS)('a stored expiry that cannot be read (%s store)', (_name, open) => {
  let gateway: TestGateway;
  let store: Store;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    ({ store, stop } = await open());
    gateway = await gatewayOn(store);
  });
  afterAll(async () => {
    await gateway.close();
    await stop();
  });

  const models = async (token: string) => {
    const res = await fetch(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, json: await res.json() };
  };

  /** A key written straight into the store, as no API call could write it. */
  async function storedKey(userId: string, expiresAt?: string): Promise<string> {
    const token = newGatewayKey();
    registerSecret(token);
    const createdAt = new Date().toISOString();
    await store.createKey({ id: `key_${userId}_${expiresAt === undefined}`, userId, prefix: token.slice(0, 10), digest: digestKey(token), createdAt, expiresAt });
    return token;
  }

  it('on the key: the key is refused as expired', async () => {
    expect(await store.createUser({ id: 'key-expiry', limits: {}, createdAt: new Date().toISOString() })).toBe(true);
    expect((await models(await storedKey('key-expiry', '2099-01-01T00:00:00Z'))).status).toBe(200);
    expect(await models(await storedKey('key-expiry', '2020-12-31T23:59:60Z'))).toEqual({ status: 401, json: UNAUTHORIZED });
  });

  it('on the user: every key of the user is refused', async () => {
    expect(await store.createUser({ id: 'user-expiry', limits: {}, createdAt: new Date().toISOString() })).toBe(true);
    const token = await storedKey('user-expiry');
    expect((await models(token)).status).toBe(200);
    await store.updateUser('user-expiry', { expiresAt: 'never' });
    expect(await models(token)).toEqual({ status: 401, json: UNAUTHORIZED });
  });
});
