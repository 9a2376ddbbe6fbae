// The command line reads a pool key's secret from standard input, never from an argument, since
// arguments land in shell history and every `ps` listing. A proxy password is a secret of the same
// kind (sealed at rest, masked in every answer), yet `--proxy http://user:password@host` takes it as
// an argument. A careless operator following `--help` leaves it in ~/.bash_history: the command
// line must refuse it (usage error, exit 2) and change nothing. The same for a webhook URL's password.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { SECRET_A, runtimeSecret } from './helpers/runtime-fixture.js';

const KEY = runtimeSecret('cli-proxy');
const PASSWORD = 'proxy-pass-Hx83kLq0Zr';
registerSecret(ADMIN_TOKEN);
registerSecret(PASSWORD);

let fake: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { KEYRELAY_SECRET: SECRET_A }, config: { upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['gpt-*'], strategy: 'round-robin', keys: [] }] } });
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});

async function cli(argv: string[], stdin?: string) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    env: { KEYRELAY_URL: gateway.url, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN },
    stdin: Readable.from(stdin === undefined ? [] : [Buffer.from(stdin)]),
  });
  return { code, stdout, stderr };
}

const PROXY = `http://user:${PASSWORD}@127.0.0.1:3128`;

describe('a proxy password on the command line', () => {
  it('keyrelay upstreams keys add --proxy with a password is refused, nothing added', async () => {
    const res = await cli(['upstreams', 'keys', 'add', 'main', '--id', 'px', '--proxy', PROXY], `${KEY}\n`);
    expect(res.code).toBe(2);
    const keys = await gateway.admin('GET', '/upstreams/main/keys');
    expect(keys.json.data.map((k: { id: string }) => k.id)).not.toContain('px');
  });

  it('keyrelay upstreams add --proxy with a password is refused, nothing added', async () => {
    const res = await cli(['upstreams', 'add', 'second', '--base-url', fake.baseUrl, '--proxy', PROXY]);
    expect(res.code).toBe(2);
    expect((await gateway.admin('GET', '/upstreams/second')).status).toBe(404);
  });

  it('keyrelay webhooks add with a password in the URL is refused, nothing added', async () => {
    const res = await cli(['webhooks', 'add', `https://alerts:${PASSWORD}@hooks.example.com/k`, '--events', 'pool_key.added', '--id', 'basic'], `${'s'.repeat(32)}\n`);
    expect(res.code).toBe(2);
    expect((await gateway.admin('GET', '/webhooks/basic')).status).toBe(404);
  });
});
