// `keyrelay upstreams add|update|remove|test-key`, `keyrelay upstreams keys add|update|remove|rotate|test`
// and `keyrelay secrets rotate` against a real gateway: the pool key's secret is read from standard
// input and never printed, an argument cannot carry it, and every change reaches the relay.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { SECRET_A, chat, runtimeSecret } from './helpers/runtime-fixture.js';

const GOOD = runtimeSecret('cli-good');
const ROTATED = runtimeSecret('cli-rotated');
const WRONG = runtimeSecret('cli-wrong');
registerSecret(ADMIN_TOKEN);

let fake: FakeUpstream;
let gateway: TestGateway;
let userKey: string;

beforeAll(async () => {
  // The fake takes only the good and the rotated secret: any other gets OpenAI's 401.
  fake = await startFakeUpstream({ keys: [GOOD, ROTATED] });
  gateway = await startGateway({ env: { KEYRELAY_SECRET: SECRET_A }, config: { upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['gpt-*'], strategy: 'round-robin', keys: [] }] } });
  userKey = await gateway.createUserKey('cli-rt', { limits: { tokensPerDay: 1_000_000 } });
  registerSecret(userKey);
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
  for (const secret of [GOOD, ROTATED, WRONG, ADMIN_TOKEN]) expect(stdout + stderr).not.toContain(secret.slice(6, 18));
  return { code, stdout, stderr };
}

describe('keyrelay upstreams keys', () => {
  it('adds a key read from standard input; it serves, and only its last 4 characters are shown', async () => {
    const added = await cli(['upstreams', 'keys', 'add', 'main', '--id', 'k1', '--weight', '2'], `${GOOD}\n`);
    expect(added).toMatchObject({ code: 0, stderr: '' });
    expect(added.stdout).toContain(`key           …${GOOD.slice(-4)}`);
    expect(added.stdout).toContain('source        store');
    expect((await chat(gateway.url, userKey)).status).toBe(200);
  });

  it('never takes the secret as an argument, and says so when standard input is empty', async () => {
    const asArgument = await cli(['upstreams', 'keys', 'add', 'main', WRONG]);
    expect(asArgument.code).toBe(2);
    expect(asArgument.stderr).toContain('unexpected argument');
    const empty = await cli(['upstreams', 'keys', 'add', 'main', '--id', 'k2'], '');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('the pool key: read nothing; pipe it in on standard input');
    const list = JSON.parse((await cli(['upstreams', '--json'])).stdout);
    expect(list.data[0].keys.map((k: { id: string }) => k.id)).toEqual(['k1']);
  });

  it('tests a key through its upstream, and a key not yet added, masking it in the answer', async () => {
    const ok = await cli(['upstreams', 'keys', 'test', 'main', 'k1', '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, status: 200, error: null, key: { id: 'k1', last4: GOOD.slice(-4) } });
    expect(JSON.parse(ok.stdout).models.length).toBeGreaterThan(0);
    const bad = await cli(['upstreams', 'test-key', 'main', '--json'], WRONG);
    expect(bad.code).toBe(1);
    const result = JSON.parse(bad.stdout);
    expect(result).toMatchObject({ ok: false, status: 401, models: [], error: { code: 'invalid_api_key' }, key: { last4: WRONG.slice(-4) } });
    expect(bad.stdout).not.toContain(WRONG);
  });

  it('updates, rotates and removes a key', async () => {
    const updated = await cli(['upstreams', 'keys', 'update', 'main', 'k1', '--models', 'gpt-4o*', '--project', 'proj_1', '--json']);
    expect(JSON.parse(updated.stdout)).toMatchObject({ models: ['gpt-4o*'], project: 'proj_1', weight: 2 });
    expect((await cli(['upstreams', 'keys', 'update', 'main', 'k1'])).code).toBe(2);
    const rotated = await cli(['upstreams', 'keys', 'rotate', 'main', 'k1'], `${ROTATED}\n`);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toContain(`…${ROTATED.slice(-4)}`);
    fake.reset();
    expect((await chat(gateway.url, userKey, 'gpt-4o-mini')).status).toBe(200);
    expect(fake.requests[0]?.headers.authorization).toBe(`Bearer ${ROTATED}`);
    expect((await cli(['upstreams', 'keys', 'update', 'main', 'k1', '--disable', '--json'])).stdout).toContain('"state": "disabled"');
    expect((await chat(gateway.url, userKey, 'gpt-4o-mini')).status).toBe(503);
    const removed = await cli(['upstreams', 'keys', 'remove', 'main', 'k1']);
    expect(removed).toEqual({ code: 0, stdout: `Removed pool key k1 (…${ROTATED.slice(-4)}) of upstream main.\n`, stderr: '' });
    const again = await cli(['upstreams', 'keys', 'remove', 'main', 'k1']);
    expect(again).toMatchObject({ code: 1, stderr: 'keyrelay: No pool key with that id. (not_found, HTTP 404)\n' });
  });
});

describe('keyrelay upstreams add|update|remove and secrets rotate', () => {
  it('adds, changes and removes an upstream; refuses what the settings hold', async () => {
    const added = await cli(['upstreams', 'add', 'extra', '--base-url', fake.baseUrl, '--models', 'o3*', '--strategy', 'weighted']);
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('source    store');
    const updated = await cli(['upstreams', 'update', 'extra', '--no-models', '--json']);
    expect(JSON.parse(updated.stdout)).toMatchObject({ id: 'extra', models: null, strategy: 'weighted' });
    expect((await cli(['upstreams', 'update', 'extra', '--models', 'a', '--no-models'])).code).toBe(2);
    const settings = await cli(['upstreams', 'remove', 'main']);
    expect(settings.code).toBe(1);
    expect(settings.stderr).toContain('(read_only, HTTP 409)');
    expect(await cli(['upstreams', 'remove', 'extra'])).toEqual({ code: 0, stdout: 'Removed upstream extra and its keys.\n', stderr: '' });
    expect((await cli(['upstreams', 'add', 'extra2'])).code).toBe(2);
  });

  it('re-seals the stored secrets', async () => {
    expect((await cli(['upstreams', 'keys', 'add', 'main', '--id', 'k3'], GOOD)).code).toBe(0);
    const rotated = await cli(['secrets', 'rotate']);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(/^Re-sealed 0 of 1 secrets under key id [0-9a-f]{8}\.\n$/);
  });

  it('lists every command in the help', async () => {
    const help = await cli(['help']);
    for (const line of [
      'upstreams add <id>',
      'upstreams update <id>',
      'upstreams remove <id>',
      'upstreams test-key <upstream>',
      'upstreams keys add <upstream>',
      'upstreams keys update <upstream> <keyId>',
      'upstreams keys remove <upstream> <keyId>',
      'upstreams keys rotate <upstream> <keyId>',
      'upstreams keys test <upstream> <keyId>',
      'secrets rotate',
    ]) expect(help.stdout).toContain(line);
    const one = await cli(['upstreams', 'keys', 'add', '--help']);
    expect(one.stdout).toContain('--weight N');
  });
});
