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

// Refused with a usage error that names the option, never repeats the password, and says how.
function refused(res: { code: number; stdout: string; stderr: string }, option: string): void {
  expect(res.code).toBe(2);
  expect(res.stderr).toContain(option);
  expect(res.stderr).toContain('--data @');
  expect(res.stderr + res.stdout).not.toContain(PASSWORD);
}

describe('a proxy password on the command line', () => {
  it('keyrelay upstreams keys add --proxy with a password is refused, nothing added, the key not read', async () => {
    const res = await cli(['upstreams', 'keys', 'add', 'main', '--id', 'px', '--proxy', PROXY], `${KEY}\n`);
    refused(res, '--proxy');
    expect(res.stderr + res.stdout).not.toContain(KEY);
    const keys = await gateway.admin('GET', '/upstreams/main/keys');
    expect(keys.json.data.map((k: { id: string }) => k.id)).not.toContain('px');
  });

  it('keyrelay upstreams keys update --proxy with a password is refused, the key unchanged', async () => {
    expect((await cli(['upstreams', 'keys', 'add', 'main', '--id', 'plain'], `${KEY}\n`)).code).toBe(0);
    // Among other proxies, and in a form the URL parser rejects, still refused.
    for (const proxy of [`direct,${PROXY}`, `http://user:${PASSWORD}@[bad-host`]) {
      refused(await cli(['upstreams', 'keys', 'update', 'main', 'plain', '--proxy', proxy]), '--proxy');
    }
    const key = await gateway.admin('GET', '/upstreams/main/keys/plain');
    expect(key.json.proxy).toBeNull();
  });

  it('keyrelay upstreams add --proxy with a password is refused, nothing added', async () => {
    const res = await cli(['upstreams', 'add', 'second', '--base-url', fake.baseUrl, '--proxy', PROXY]);
    refused(res, '--proxy');
    expect((await gateway.admin('GET', '/upstreams/second')).status).toBe(404);
  });

  it('keyrelay upstreams update --proxy with a password is refused; one without a password is taken', async () => {
    expect((await cli(['upstreams', 'add', 'third', '--base-url', fake.baseUrl])).code).toBe(0);
    refused(await cli(['upstreams', 'update', 'third', '--proxy', PROXY]), '--proxy');
    expect((await gateway.admin('GET', '/upstreams/third')).json.proxy).toBeNull();
    expect((await cli(['upstreams', 'update', 'third', '--proxy', 'http://user@127.0.0.1:3128'])).code).toBe(0);
    expect((await gateway.admin('GET', '/upstreams/third')).json.proxy).toEqual(['http://user@127.0.0.1:3128']);
  });

  it('keyrelay webhooks add with a password in the URL is refused, nothing added', async () => {
    const res = await cli(['webhooks', 'add', `https://alerts:${PASSWORD}@hooks.example.com/k`, '--events', 'pool_key.added', '--id', 'basic'], `${'s'.repeat(32)}\n`);
    refused(res, '<url>');
    expect((await gateway.admin('GET', '/webhooks/basic')).status).toBe(404);
  });
});
