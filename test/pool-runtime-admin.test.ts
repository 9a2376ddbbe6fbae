// Upstreams and pool keys added, changed and removed through the admin API while the gateway runs,
// on each store backend: what comes from the settings is listed as such and cannot be changed
// here, ids never collide, secrets are write-only, and every bad input is refused naming its field
// with nothing changed.
import type { Config } from '../src/config.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, invalidKeyBody, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { type AdminAnswer, SECRET_A, adminAt, chat, fragments, runtimeSecret } from './helpers/runtime-fixture.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

const SETTINGS_KEY = runtimeSecret('settings');
const ADDED = runtimeSecret('added');
const OTHER = runtimeSecret('other');

describe.each(STORE_BACKENDS)('run-time upstreams on the %s store', (_name, makeBackend) => {
  let backend: Backend;
  let fake: FakeUpstream;
  let gateway: TestGateway;
  let admin: ReturnType<typeof adminAt>;
  let userKey: string;
  const answers: AdminAnswer[] = [];
  const call = async (method: string, path: string, body?: unknown) => {
    const answer = await admin(method, path, body);
    answers.push(answer);
    return answer;
  };

  beforeAll(async () => {
    backend = await makeBackend();
    fake = await startFakeUpstream();
    gateway = await startGateway({
      env: { KEYRELAY_SECRET: SECRET_A },
      store: backend.store,
      // The settings' upstream serves gpt-4o* only, so other models reach the run-time upstream.
      // Round robin, so that the same request reaches every key (affinity would keep it on one).
      config: {
        pool: { cacheAffinity: false },
        upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['gpt-4o*'], strategy: 'round-robin', keys: [{ id: 's1', key: SETTINGS_KEY, weight: 1 }] }],
      } as Partial<Config>,
    });
    admin = adminAt(gateway.url);
    userKey = await gateway.createUserKey('rt-user', { limits: { tokensPerDay: 1_000_000 } });
    registerSecret(userKey);
  });
  afterAll(async () => {
    await gateway.close();
    await fake.close();
    await backend.stop();
  });

  it('lists the settings as read-only and refuses to change them or take their ids', async () => {
    const list = await call('GET', '/upstreams');
    expect(list.json.data).toEqual([
      expect.objectContaining({ id: 'main', source: 'settings', kind: 'openai', models: ['gpt-4o*'], keys: [expect.objectContaining({ id: 's1', source: 'settings', last4: SETTINGS_KEY.slice(-4), state: 'active' })] }),
    ]);
    for (const [method, path, body] of [
      ['PATCH', '/upstreams/main', { strategy: 'weighted' }],
      ['DELETE', '/upstreams/main', undefined],
      ['PATCH', '/upstreams/main/keys/s1', { weight: 3 }],
      ['DELETE', '/upstreams/main/keys/s1', undefined],
      ['POST', '/upstreams/main/keys/s1/rotate', { key: OTHER }],
    ] as const) {
      const answer = await call(method, path, body);
      expect(answer.status, `${method} ${path}`).toBe(409);
      expect(answer.json.error.code).toBe('read_only');
    }
    const taken = await call('POST', '/upstreams', { id: 'main', baseUrl: fake.baseUrl });
    expect(taken.status).toBe(409);
    expect(taken.json.error).toMatchObject({ code: 'conflict', param: 'id' });
    const takenKey = await call('POST', '/upstreams/main/keys', { id: 's1', key: OTHER });
    expect(takenKey.status).toBe(409);
    expect(takenKey.json.error).toMatchObject({ code: 'conflict', param: 'id' });
    expect((await call('GET', '/upstreams')).json).toEqual(list.json);
  });

  it('adds an upstream and a key that serve requests at once, and shows only the last 4', async () => {
    const up = await call('POST', '/upstreams', { id: 'extra', baseUrl: fake.baseUrl, models: ['o3*'], strategy: 'weighted' });
    expect(up.status).toBe(201);
    expect(up.json).toEqual({ id: 'extra', source: 'store', kind: 'openai', baseUrl: fake.baseUrl, models: ['o3*'], strategy: 'weighted', aliases: {}, proxy: null, keys: [] });
    const key = await call('POST', '/upstreams/extra/keys', { id: 'k1', key: ADDED, weight: 2, organization: 'org-rt' });
    expect(key.status).toBe(201);
    expect(key.json).toMatchObject({ id: 'k1', source: 'store', last4: ADDED.slice(-4), state: 'active', weight: 2, organization: 'org-rt' });
    fake.reset();
    const answer = await chat(gateway.url, userKey, 'o3-mini');
    expect(answer.status).toBe(200);
    expect(fake.requests.map((r) => [r.headers.authorization, r.headers['openai-organization']])).toEqual([[`Bearer ${ADDED}`, 'org-rt']]);
    // A run-time key on the settings' upstream joins its pool; without an id it gets one.
    const joined = await call('POST', '/upstreams/main/keys', { key: OTHER });
    expect(joined.status).toBe(201);
    expect(joined.json).toMatchObject({ id: 'rt-1', source: 'store', last4: OTHER.slice(-4) });
    fake.reset();
    for (let i = 0; i < 4; i++) expect((await chat(gateway.url, userKey, 'gpt-4o-mini')).status).toBe(200);
    expect(new Set(fake.requests.map((r) => r.headers.authorization))).toEqual(new Set([`Bearer ${SETTINGS_KEY}`, `Bearer ${OTHER}`]));
  });

  it('refuses bad input naming the field, and changes nothing', async () => {
    const before = (await call('GET', '/upstreams')).json;
    const cases: Array<[string, string, unknown, number, string, string | null]> = [
      ['POST', '/upstreams', { id: 'bad', baseUrl: 'ftp://example.com/v1' }, 400, 'invalid_request', 'baseUrl'],
      ['POST', '/upstreams', { id: 'bad', baseUrl: 'not a url' }, 400, 'invalid_request', 'baseUrl'],
      ['POST', '/upstreams', { id: 'bad', baseUrl: 'https://user:pw@example.com/v1' }, 400, 'invalid_request', 'baseUrl'],
      ['POST', '/upstreams', { id: 'bad', baseUrl: fake.baseUrl, proxy: 'gopher://proxy:70' }, 400, 'invalid_request', 'proxy'],
      ['POST', '/upstreams', { id: 'bad id!', baseUrl: fake.baseUrl }, 400, 'invalid_request', 'id'],
      ['POST', '/upstreams', { id: 'bad', baseUrl: fake.baseUrl, strategy: 'random' }, 400, 'invalid_request', 'strategy'],
      ['POST', '/upstreams', { id: 'bad', baseUrl: fake.baseUrl, kind: 'anthropic' }, 400, 'invalid_request', 'kind'],
      ['POST', '/upstreams', { id: 'extra', baseUrl: fake.baseUrl }, 409, 'conflict', 'id'],
      ['PATCH', '/upstreams/extra', { baseUrl: fake.baseUrl, proxy: 'gopher://proxy:70' }, 400, 'invalid_request', 'proxy'],
      ['PATCH', '/upstreams/nope', { strategy: 'weighted' }, 404, 'not_found', null],
      ['DELETE', '/upstreams/nope', undefined, 404, 'not_found', null],
      ['POST', '/upstreams/nope/keys', { key: OTHER }, 404, 'not_found', null],
      ['POST', '/upstreams/extra/keys', { key: '' }, 400, 'invalid_request', 'key'],
      ['POST', '/upstreams/extra/keys', { key: 'x'.repeat(513) }, 400, 'invalid_request', 'key'],
      ['POST', '/upstreams/extra/keys', { key: 'sk-has space-0123456789' }, 400, 'invalid_request', 'key'],
      ['POST', '/upstreams/extra/keys', { id: 'k1', key: OTHER }, 409, 'conflict', 'id'],
      ['POST', '/upstreams/extra/keys', { key: OTHER, proxy: ['http://p:1', 'ftp://p:2'] }, 400, 'invalid_request', 'proxy'],
      ['POST', '/upstreams/extra/keys', { key: OTHER, weight: 0 }, 400, 'invalid_request', 'weight'],
      ['PATCH', '/upstreams/extra/keys/nope', { weight: 2 }, 404, 'not_found', null],
      ['PATCH', '/upstreams/extra/keys/k1', { weight: 2, proxy: 'nope://x' }, 400, 'invalid_request', 'proxy'],
      ['PATCH', '/upstreams/extra/keys/k1', { weight: 2, secret: 'x' }, 400, 'invalid_request', 'secret'],
      ['DELETE', '/upstreams/extra/keys/nope', undefined, 404, 'not_found', null],
      ['POST', '/upstreams/extra/keys/nope/rotate', { key: OTHER }, 404, 'not_found', null],
      ['POST', '/upstreams/extra/keys/k1/rotate', { key: '' }, 400, 'invalid_request', 'key'],
    ];
    for (const [method, path, body, status, code, param] of cases) {
      const answer = await call(method, path, body);
      expect([answer.status, answer.json.error?.code, answer.json.error?.param], `${method} ${path} ${JSON.stringify(body)}`).toEqual([status, code, param]);
    }
    expect((await call('GET', '/upstreams')).json).toEqual(before);
  });

  it('changes and removes what it added', async () => {
    const patched = await call('PATCH', '/upstreams/extra/keys/k1', { weight: 5, models: ['o3-mini'], organization: null, proxy: 'socks5h://user:pw-secret-77@127.0.0.1:9' });
    registerSecret('pw-secret-77');
    expect(patched.status).toBe(200);
    expect(patched.json).toMatchObject({ weight: 5, models: ['o3-mini'], organization: null, proxy: ['socks5h://user:***@127.0.0.1:9'] });
    const cleared = await call('PATCH', '/upstreams/extra/keys/k1', { proxy: null, enabled: false });
    expect(cleared.json).toMatchObject({ proxy: null, state: 'disabled', reason: 'manual' });
    expect((await call('PATCH', '/upstreams/extra/keys/k1', { enabled: true })).json.state).toBe('active');
    const up = await call('PATCH', '/upstreams/extra', { models: null, strategy: 'least-in-flight' });
    expect(up.json).toMatchObject({ models: null, strategy: 'least-in-flight' });
    const gone = await call('DELETE', '/upstreams/main/keys/rt-1');
    expect(gone.json).toEqual({ upstream: 'main', id: 'rt-1', last4: OTHER.slice(-4), deleted: true });
    fake.reset();
    for (let i = 0; i < 3; i++) expect((await chat(gateway.url, userKey, 'gpt-4o-mini')).status).toBe(200);
    expect(new Set(fake.requests.map((r) => r.headers.authorization))).toEqual(new Set([`Bearer ${SETTINGS_KEY}`]));
    expect((await call('DELETE', '/upstreams/extra')).json).toEqual({ id: 'extra', deleted: true });
    expect((await call('GET', '/upstreams')).json.data.map((u: { id: string }) => u.id)).toEqual(['main']);
    const none = await chat(gateway.url, userKey, 'o3-mini');
    expect(none.status).toBe(503);
  });

  it('keeps key health for run-time keys: a refused key is disabled, and a rotation starts it afresh', async () => {
    const dead = runtimeSecret('dead');
    const revived = runtimeSecret('revived');
    fake.reset();
    fake.handle((req) => (req.headers.authorization === `Bearer ${dead}` ? { status: 401, body: invalidKeyBody(req.headers.authorization) } : undefined));
    expect((await call('POST', '/upstreams', { id: 'health', baseUrl: fake.baseUrl, models: ['dall-*'] })).status).toBe(201);
    expect((await call('POST', '/upstreams/health/keys', { id: 'h1', key: dead })).status).toBe(201);
    // The only key's own answer reaches the client (masked); the key is set aside.
    expect((await chat(gateway.url, userKey, 'dall-e-3')).status).toBe(401);
    expect((await call('GET', '/upstreams/health/keys/h1')).json).toMatchObject({ state: 'disabled', reason: 'invalid_api_key', failures: 1 });
    expect((await call('POST', '/upstreams/health/keys/h1/rotate', { key: revived })).json).toMatchObject({ state: 'active', last4: revived.slice(-4) });
    expect((await chat(gateway.url, userKey, 'dall-e-3')).status).toBe(200);
    expect(fake.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${dead}`, `Bearer ${revived}`]);
    expect((await call('DELETE', '/upstreams/health')).status).toBe(200);
    fake.reset();
  });

  it('never shows a secret in any answer', () => {
    const all = answers.map((a) => a.text).join('\n');
    for (const secret of [ADDED, OTHER, SECRET_A]) for (const piece of fragments(secret, 10)) expect(all).not.toContain(piece);
  });
});

describe('without KEYRELAY_SECRET', () => {
  it('refuses to keep a secret (409 secret_not_configured) and changes nothing', async () => {
    const fake = await startFakeUpstream();
    const gateway = await startGateway({ config: { upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['*'], strategy: 'round-robin', keys: [] }] } });
    const admin = adminAt(gateway.url);
    try {
      const before = (await admin('GET', '/upstreams')).json;
      const key = await admin('POST', '/upstreams/main/keys', { key: ADDED });
      expect(key.status).toBe(409);
      expect(key.json.error).toMatchObject({ code: 'secret_not_configured', param: 'key', type: 'invalid_request_error' });
      const proxied = await admin('POST', '/upstreams', { id: 'p', baseUrl: fake.baseUrl, proxy: 'http://u:pw-secret-88@127.0.0.1:9' });
      registerSecret('pw-secret-88');
      expect(proxied.status).toBe(409);
      expect(proxied.json.error).toMatchObject({ code: 'secret_not_configured', param: 'proxy' });
      expect((await admin('POST', '/secrets/rotate')).json.error.code).toBe('secret_not_configured');
      expect((await admin('GET', '/upstreams')).json).toEqual(before);
      // What holds no secret needs none.
      expect((await admin('POST', '/upstreams', { id: 'plain', baseUrl: fake.baseUrl, proxy: 'http://127.0.0.1:9' })).status).toBe(201);
    } finally {
      await gateway.close();
      await fake.close();
    }
  });
});
