// POST /admin/upstreams/{id}/keys/{keyId}/test and /test-key: one GET /models with the key, through
// the egress its requests would take (here its own authenticated proxy), answering whether it works,
// what it sees and why not, with the key masked; a failed test leaves the key's health alone.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FakeUpstream, invalidKeyBody, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { type TestHttpProxy, startHttpProxy, withCredentials } from './helpers/http-proxy.js';
import { registerSecret } from './helpers/log-capture.js';
import { NO_WARM_CONNECTION } from './helpers/proxy-faults.js';
import { SECRET_A, adminAt, runtimeSecret } from './helpers/runtime-fixture.js';

const GOOD = runtimeSecret('probe-good');
const BAD = runtimeSecret('probe-bad');
const PROXY_PASSWORD = 'Pr0xy-Passw0rd-Probe';
registerSecret(PROXY_PASSWORD);

let fake: FakeUpstream;
let proxy: TestHttpProxy;
let gateway: TestGateway;
let admin: ReturnType<typeof adminAt>;

beforeAll(async () => {
  fake = await startFakeUpstream({ keys: [GOOD] });
  // One tunnel per test, so that every test shows on the proxy it took.
  fake.handle((req) => {
    if (req.path !== '/v1/models') return undefined;
    const good = req.headers.authorization === `Bearer ${GOOD}`;
    return good
      ? { headers: { connection: 'close' }, body: { object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model' }] } }
      : { status: 401, headers: { connection: 'close' }, body: invalidKeyBody(req.headers.authorization) };
  });
  proxy = await startHttpProxy({ auth: { username: 'probe', password: PROXY_PASSWORD } });
  gateway = await startGateway({ env: { KEYRELAY_SECRET: SECRET_A }, config: { upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['*'], strategy: 'round-robin', keys: [] }], upstreamConnections: NO_WARM_CONNECTION } });
  admin = adminAt(gateway.url);
  const proxied = withCredentials(proxy.url, 'probe', PROXY_PASSWORD);
  expect((await admin('POST', '/upstreams/main/keys', { id: 'good', key: GOOD, proxy: proxied, project: 'proj_probe' })).status).toBe(201);
  expect((await admin('POST', '/upstreams/main/keys', { id: 'bad', key: BAD, proxy: proxied })).status).toBe(201);
});
afterAll(async () => {
  await gateway.close();
  await proxy.close();
  await fake.close();
});

it('tests a pool key through its own proxy', async () => {
  const before = proxy.connects.length;
  const seen = fake.requests.length;
  const answer = await admin('POST', '/upstreams/main/keys/good/test');
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ ok: true, status: 200, error: null, key: { id: 'good', last4: GOOD.slice(-4) } });
  expect(answer.json.models).toContain('gpt-4o-mini');
  expect(typeof answer.json.latencyMs).toBe('number');
  expect(proxy.connects.slice(before)).toEqual([expect.objectContaining({ authorized: true })]);
  expect(fake.requests.slice(seen).map((r) => [r.method, r.path, r.headers.authorization, r.headers['openai-project']])).toEqual([['GET', '/v1/models', `Bearer ${GOOD}`, 'proj_probe']]);
});

it('says why a key fails, masked, and leaves its health alone', async () => {
  const answer = await admin('POST', '/upstreams/main/keys/bad/test');
  expect(answer.json).toMatchObject({ ok: false, status: 401, models: [], error: { code: 'invalid_api_key' }, key: { id: 'bad', last4: BAD.slice(-4) } });
  expect(answer.text).not.toContain(BAD.slice(6, 20));
  expect((await admin('GET', '/upstreams/main/keys/bad')).json).toMatchObject({ state: 'active', failures: 0 });
});

it('tests a key not yet added, through the proxy it names, and adds nothing', async () => {
  const before = proxy.connects.length;
  const answer = await admin('POST', '/upstreams/main/test-key', { key: GOOD, proxy: withCredentials(proxy.url, 'probe', PROXY_PASSWORD) });
  expect(answer.json).toMatchObject({ ok: true, status: 200, key: { last4: GOOD.slice(-4) } });
  expect(proxy.connects.length).toBe(before + 1);
  const wrongProxy = await admin('POST', '/upstreams/main/test-key', { key: GOOD, proxy: withCredentials(proxy.url, 'probe', 'wrong-password-x') });
  expect(wrongProxy.json).toMatchObject({ ok: false, status: null, error: { code: 'upstream_proxy_error' } });
  const badProxy = await admin('POST', '/upstreams/main/test-key', { key: GOOD, proxy: 'gopher://x:1' });
  expect([badProxy.status, badProxy.json.error.param]).toEqual([400, 'proxy']);
  expect((await admin('POST', '/upstreams/nope/test-key', { key: GOOD })).status).toBe(404);
  expect((await admin('POST', '/upstreams/main/keys/nope/test')).status).toBe(404);
  expect((await admin('GET', '/upstreams/main/keys')).json.data.map((k: { id: string }) => k.id)).toEqual(['good', 'bad']);
});
