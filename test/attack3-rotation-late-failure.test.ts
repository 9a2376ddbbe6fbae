// The reason to rotate a pool key is often that the old secret leaked: the operator rotates, then
// revokes the old secret at OpenAI at once. A request that was already running on the old secret
// then gets OpenAI's 401. Key health is kept by key id, so that 401 disables the id, and with it
// the new secret that has just replaced the old one: every request after the rotation is refused
// (503) until the disablement ends. What the old secret earns after a rotation is not the new
// one's: the new secret must keep serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, type RecordedRequest, invalidKeyBody, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';
import { SECRET_A, adminAt, chat, runtimeSecret } from './helpers/runtime-fixture.js';

const OLD = runtimeSecret('late-old');
const NEW = runtimeSecret('late-new');

let fake: FakeUpstream;
let gateway: TestGateway;
let userKey: string;

const auth = (r: RecordedRequest) => String(r.headers.authorization).slice('Bearer '.length);

beforeAll(async () => {
  fake = await startFakeUpstream();
  gateway = await startGateway({
    env: { KEYRELAY_SECRET: SECRET_A },
    config: { upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['gpt-*'], strategy: 'round-robin', keys: [] }] },
  });
  userKey = await gateway.createUserKey('late-user', { limits: { tokensPerDay: 1_000_000 } });
  registerSecret(userKey);
  expect((await adminAt(gateway.url)('POST', '/upstreams/main/keys', { id: 'k', key: OLD })).status).toBe(201);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});

describe('a request on the old secret that fails after the rotation', () => {
  it('does not disable the new secret', async () => {
    let revoke!: () => void;
    const revoked = new Promise<void>((resolve) => (revoke = resolve));
    // The old secret's request is held until the operator has revoked it at OpenAI.
    fake.handle(async (req) => {
      if (auth(req) !== OLD) return undefined;
      await revoked;
      return { status: 401, body: invalidKeyBody(String(req.headers.authorization)) };
    });
    const running = chat(gateway.url, userKey);
    await until(() => fake.requests.some((r) => auth(r) === OLD), 'the request to reach the upstream on the old secret');
    expect((await adminAt(gateway.url)('POST', '/upstreams/main/keys/k/rotate', { key: NEW })).status).toBe(200);
    revoke();
    await running;

    const after = await chat(gateway.url, userKey);
    expect(after.status).toBe(200);
    expect(fake.requests.map(auth).slice(-1)).toEqual([NEW]);
    expect((await adminAt(gateway.url)('GET', '/upstreams/main/keys/k')).json.state).toBe('active');
  });
});
