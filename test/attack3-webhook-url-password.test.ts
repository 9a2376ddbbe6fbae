// A webhook receiver behind basic auth is given as https://user:password@host/path. Secrets are
// write-only in every admin answer (the signing secret is never shown; a proxy URL shows its
// password masked): the webhook URL's password must not come back either, neither in the 201 of
// the create nor in the list or the read of one. Refusing such a URL (400 naming `url`) is as good.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { SECRET_A } from './helpers/runtime-fixture.js';

const PASSWORD = 'Wh-Basic-Pass-7Rq2Kx9';
registerSecret(PASSWORD);

let fake: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: 'sk-webhook-url-test-0000000000000001', KEYRELAY_UPSTREAM_URL: fake.baseUrl, KEYRELAY_SECRET: SECRET_A } });
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});

describe('a webhook URL with a password', () => {
  it('never shows the password in an admin answer', async () => {
    const created = await gateway.admin('POST', '/webhooks', {
      id: 'basic',
      url: `https://alerts:${PASSWORD}@hooks.example.com/keyrelay`,
      events: ['pool_key.added'],
      secret: 's'.repeat(32),
    });
    expect(JSON.stringify(created.json)).not.toContain(PASSWORD);
    if (created.status === 400) {
      expect(created.json.error.param).toBe('url');
      return;
    }
    expect(created.status).toBe(201);
    expect(JSON.stringify((await gateway.admin('GET', '/webhooks')).json)).not.toContain(PASSWORD);
    expect(JSON.stringify((await gateway.admin('GET', '/webhooks/basic')).json)).not.toContain(PASSWORD);
  });
});
