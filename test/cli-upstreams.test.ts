// `keyrelay upstreams` against a real gateway with two pool keys: one table row per key with its
// state, until, reason and counts; a key the upstream refused with 401 shows as disabled; enable
// and disable by hand change what the table and the relay do; --json prints the API's answers.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { main } from '../src/cli.js';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const ALPHA = 'sk-pool-cli-upstreams-alpha-0123456789x9Qa';
const BETA = 'sk-pool-cli-upstreams-beta-0123456789abk7Zb';
registerSecret(ALPHA);
registerSecret(BETA);
registerSecret(ADMIN_TOKEN);

let fake: FakeUpstream;
let gateway: TestGateway;
let userKey = '';

beforeAll(async () => {
  fake = await startFakeUpstream();
  const upstreams = [{ id: 'main', baseUrl: fake.baseUrl, strategy: 'round-robin', keys: [{ id: 'alpha', key: ALPHA }, { id: 'beta', key: BETA }] }];
  // Round robin over the same chat, not the prompt cache's one key: what each key went through is shown.
  gateway = await startGateway({ config: { upstreams, pool: { cacheAffinity: false } } as Partial<Config> });
  userKey = await gateway.createUserKey('ops');
  registerSecret(userKey);
});

afterAll(async () => {
  await gateway?.close();
  await fake?.close();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(argv: string[], target: TestGateway = gateway): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: { KEYRELAY_URL: target.url, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN },
  });
  for (const secret of [ADMIN_TOKEN, ALPHA, BETA]) expect(stdout + stderr).not.toContain(secret);
  return { code, stdout, stderr };
}

async function chat(): Promise<number> {
  const res = await fetch(`${gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 20 }),
  });
  await res.arrayBuffer();
  return res.status;
}

async function poolKey(id: string): Promise<{ until: string | null; state: string }> {
  const { json } = await gateway.admin('GET', '/upstreams');
  return json.data[0].keys.find((k: { id: string }) => k.id === id);
}

const HEADER = 'UPSTREAM  KEY    LAST4  STATE   UNTIL  REASON  IN FLIGHT  REQUESTS  FAILURES\n';

describe('keyrelay upstreams', () => {
  it('prints one row per pool key, the key shown by its last 4 characters only', async () => {
    expect(await cli(['upstreams'])).toEqual({
      code: 0,
      stderr: '',
      stdout: HEADER + 'main      alpha  …x9Qa  active  -      -       0          0         0\n' + 'main      beta   …k7Zb  active  -      -       0          0         0\n',
    });
  });

  it('shows a key the upstream refused with 401 as disabled, until its next probe', async () => {
    fake.handle((req) =>
      req.headers.authorization === `Bearer ${BETA}`
        ? { status: 401, body: { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } } }
        : undefined,
    );
    // Round robin: the first request goes to alpha, the second to beta, which fails over to alpha.
    expect(await chat()).toBe(200);
    expect(await chat()).toBe(200);
    const { until } = await poolKey('beta');
    expect(until).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(await cli(['upstreams'])).toEqual({
      code: 0,
      stderr: '',
      stdout:
        'UPSTREAM  KEY    LAST4  STATE     UNTIL                     REASON           IN FLIGHT  REQUESTS  FAILURES\n' +
        'main      alpha  …x9Qa  active    -                         -                0          2         0\n' +
        `main      beta   …k7Zb  disabled  ${until}  invalid_api_key  0          1         1\n`,
    });
  });

  it('counts failures in a row beside the total', async () => {
    let failed = false;
    fake.handle(() => {
      if (failed) return undefined;
      failed = true;
      return { status: 500, body: { error: { message: 'The server had an error.', type: 'server_error', param: null, code: null } } };
    });
    // Beta rests until its probe, so alpha's 500 has no other key to go to.
    expect(await chat()).toBe(500);
    const run = await cli(['upstreams']);
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n')[1]).toBe('main      alpha  …x9Qa  active    -                         -                0          3         1 (1 in a row)');
  });

  it('prints the API answer with --json', async () => {
    const run = await cli(['upstreams', '--json']);
    expect(run.code).toBe(0);
    const shown = JSON.parse(run.stdout);
    expect(shown).toEqual((await gateway.admin('GET', '/upstreams')).json);
    expect(shown.data[0]).toMatchObject({ id: 'main', strategy: 'round-robin' });
    expect(shown.data[0].keys.map((k: { id: string; last4: string }) => [k.id, k.last4])).toEqual([
      ['alpha', 'x9Qa'],
      ['beta', 'k7Zb'],
    ]);
  });
});

describe('keyrelay upstreams enable and disable', () => {
  it('disables a key by hand: the table shows it, and the relay has no key left', async () => {
    fake.reset();
    expect(await cli(['upstreams', 'disable', 'main', 'alpha'])).toEqual({
      code: 0,
      stderr: '',
      stdout: 'Disabled pool key alpha (…x9Qa) of upstream main: it takes no requests, in any gateway process, until enabled.\n',
    });
    const { until } = await poolKey('beta');
    const run = await cli(['upstreams']);
    expect(run.stdout.split('\n')[1]).toBe('main      alpha  …x9Qa  disabled  -                         manual           0          3         1 (1 in a row)');
    expect(run.stdout.split('\n')[2]).toBe(`main      beta   …k7Zb  disabled  ${until}  invalid_api_key  0          1         1`);
    expect(await chat()).toBe(503);
    expect(fake.requests).toEqual([]);
  });

  it('enables keys again, whatever set them aside: both serve', async () => {
    for (const id of ['alpha', 'beta']) {
      expect(await cli(['upstreams', 'enable', 'main', id])).toEqual({
        code: 0,
        stderr: '',
        stdout: `Enabled pool key ${id} (…${id === 'alpha' ? 'x9Qa' : 'k7Zb'}) of upstream main: it takes requests again.\n`,
      });
    }
    expect(await cli(['upstreams'])).toEqual({
      code: 0,
      stderr: '',
      stdout: HEADER + 'main      alpha  …x9Qa  active  -      -       0          3         1\n' + 'main      beta   …k7Zb  active  -      -       0          1         1\n',
    });
    expect(await chat()).toBe(200);
    expect(await chat()).toBe(200);
    expect(fake.requests.map((r) => r.headers.authorization).sort()).toEqual([`Bearer ${ALPHA}`, `Bearer ${BETA}`]);
  });

  it('prints the changed key with --json as the API answers it', async () => {
    const run = await cli(['upstreams', 'disable', 'main', 'beta', '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ upstream: 'main', ...(await poolKey('beta')) });
    expect(JSON.parse(run.stdout)).toMatchObject({ id: 'beta', last4: 'k7Zb', state: 'disabled', reason: 'manual', until: null });
    expect((await cli(['upstreams', 'enable', 'main', 'beta'])).code).toBe(0);
  });

  it('says so for an upstream or key the gateway does not have, exit 1', async () => {
    const missing = { code: 1, stdout: '', stderr: 'keyrelay: No pool key with that id. (not_found, HTTP 404)\n' };
    expect(await cli(['upstreams', 'disable', 'main', 'gamma'])).toEqual(missing);
    expect(await cli(['upstreams', 'enable', 'other', 'alpha'])).toEqual(missing);
  });

  it('exits 2 with a usage line when an argument is missing or extra', async () => {
    expect(await cli(['upstreams', 'disable', 'main'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'keyrelay: missing <keyId>\nusage: keyrelay upstreams disable <upstream> <keyId> [options]\n',
    });
    expect(await cli(['upstreams', 'enable'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'keyrelay: missing <upstream>\nusage: keyrelay upstreams enable <upstream> <keyId> [options]\n',
    });
    expect(await cli(['upstreams', 'main'])).toEqual({ code: 2, stdout: '', stderr: 'keyrelay: unexpected argument "main"\nusage: keyrelay upstreams [options]\n' });
    expect((await poolKey('alpha')).state).toBe('active');
  });

  it('is listed in the help', async () => {
    const help = await cli(['help']);
    for (const line of ['  upstreams ', '  upstreams enable <upstream> <keyId> ', '  upstreams disable <upstream> <keyId> ']) expect(help.stdout).toContain(line);
  });
});

describe('keyrelay upstreams with an empty pool', () => {
  it('says that the pool has no keys and how to give it some', async () => {
    const empty = await startGateway();
    try {
      expect(await cli(['upstreams'], empty)).toEqual({
        code: 0,
        stderr: '',
        stdout: 'The pool has no keys. Set OPENAI_API_KEYS, or list keys under upstreams in the settings file, and restart the gateway.\n',
      });
    } finally {
      await empty.close();
    }
  });
});
