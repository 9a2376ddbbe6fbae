// The keyrelay command line against a real gateway: users and keys through the admin API, as
// tables and as JSON; a revoked key is refused by the relay; every failure says what to do.
import { createServer } from 'node:net';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { main } from '../src/cli.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-cli-test-0123456789abcdefABCD';
registerSecret(POOL_KEY);
registerSecret(ADMIN_TOKEN);

let upstream: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  upstream = await startFakeUpstream({ keys: [POOL_KEY] });
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: upstream.baseUrl } });
});

afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one command in this process with its own streams; nothing it prints may hold the admin token. */
async function cli(argv: string[], env?: Record<string, string | undefined>): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: env ?? { KEYRELAY_URL: gateway.url, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN },
  });
  expect(stdout + stderr).not.toContain(ADMIN_TOKEN);
  return { code, stdout, stderr };
}

/** The cells of an aligned table, after checking that every row starts its columns where the header does. */
function cells(table: string): string[][] {
  const lines = table.trimEnd().split('\n');
  const header = lines[0] ?? '';
  const starts = [...header.matchAll(/\S+/g)].map((m) => m.index);
  return lines.map((line) => {
    expect(line).toBe(line.trimEnd());
    return starts.map((start, i) => {
      const end = starts[i + 1];
      if (end !== undefined) expect(line.slice(end - 2, end), `two blanks before column ${i + 1} of "${line}"`).toBe('  ');
      return line.slice(start, end).trim();
    });
  });
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}

async function models(key: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${gateway.baseUrl}/models`, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, body: await res.json() };
}

describe('keyrelay users', () => {
  it('creates a user with every option and shows it as a field list', async () => {
    const run = await cli([
      'users', 'create', 'alice', '--name', 'Alice A', '--models', 'gpt-4o*, o3', '--expires-at', '2030-01-31',
      '--rpm', '60', '--tpm', '10000', '--tokens-per-day', '100000', '--tokens-per-month', '1000000',
      '--usd-per-day', '1.5', '--usd-per-month', '20', '--max-concurrent', '2',
    ]);
    const stored = await gateway.admin('GET', '/users/alice');
    expect(stored.json).toEqual({
      id: 'alice',
      name: 'Alice A',
      models: ['gpt-4o*', 'o3'],
      expiresAt: '2030-01-31T00:00:00.000Z',
      limits: { rpm: 60, tpm: 10000, tokensPerDay: 100000, tokensPerMonth: 1000000, usdPerDay: 1.5, usdPerMonth: 20, maxConcurrent: 2 },
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    expect(run).toEqual({
      code: 0,
      stderr: '',
      stdout:
        'Created user alice.\n' +
        'id         alice\n' +
        'name       Alice A\n' +
        'models     gpt-4o*, o3\n' +
        'expiresAt  2030-01-31T00:00:00.000Z\n' +
        `createdAt  ${stored.json.createdAt}\n` +
        'limits     rpm=60 tpm=10000 tokensPerDay=100000 tokensPerMonth=1000000 usdPerDay=1.5 usdPerMonth=20 maxConcurrent=2\n',
    });
  });

  it('creates a user with --json and prints the API answer as it came', async () => {
    const run = await cli(['users', 'create', 'bob', '--json']);
    expect(run.code).toBe(0);
    const stored = await gateway.admin('GET', '/users/bob');
    expect(JSON.parse(run.stdout)).toEqual(stored.json);
    expect(stored.json).toEqual({ id: 'bob', limits: {}, createdAt: expect.any(String) });
  });

  it('lists the users as an aligned table with ISO dates', async () => {
    const run = await cli(['users', 'list']);
    expect(run.code).toBe(0);
    const { json } = await gateway.admin('GET', '/users');
    const created = new Map((json.data as Array<{ id: string; createdAt: string }>).map((u) => [u.id, u.createdAt]));
    expect(cells(run.stdout)).toEqual([
      ['ID', 'NAME', 'MODELS', 'LIMITS', 'EXPIRES', 'CREATED'],
      ['alice', 'Alice A', 'gpt-4o*, o3', 'rpm=60 tpm=10000 tokensPerDay=100000 tokensPerMonth=1000000 usdPerDay=1.5 usdPerMonth=20 maxConcurrent=2', '2030-01-31T00:00:00.000Z', created.get('alice')],
      ['bob', '-', 'any', 'unlimited', 'never', created.get('bob')],
    ]);
  });

  it('lists the users with --json as the API answers them', async () => {
    const run = await cli(['--json', 'users', 'list']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual((await gateway.admin('GET', '/users')).json);
  });

  it('shows one user', async () => {
    const run = await cli(['users', 'show', 'bob']);
    const { json } = await gateway.admin('GET', '/users/bob');
    expect(run).toEqual({
      code: 0,
      stderr: '',
      stdout: `id         bob\nname       -\nmodels     any\nexpiresAt  never\ncreatedAt  ${json.createdAt}\nlimits     unlimited\n`,
    });
  });

  it('maps a conflict from the server to its message, code and status, exit 1', async () => {
    const run = await cli(['users', 'create', 'bob']);
    expect(run).toEqual({ code: 1, stdout: '', stderr: 'keyrelay: A user with id "bob" exists. (conflict, HTTP 409)\n' });
  });

  it('maps a validation error from the server', async () => {
    const run = await cli(['users', 'create', 'not allowed!']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^keyrelay: Invalid request: .*pattern.* \(invalid_request, HTTP 400\)\n$/);
  });

  it('deletes a user, after which showing it is a 404', async () => {
    const created = await cli(['users', 'create', 'carol']);
    expect(created.code).toBe(0);
    expect(await cli(['users', 'delete', 'carol'])).toEqual({ code: 0, stderr: '', stdout: 'Deleted user carol; its keys no longer work.\n' });
    expect(await cli(['users', 'show', 'carol'])).toEqual({ code: 1, stdout: '', stderr: 'keyrelay: No user with that id. (not_found, HTTP 404)\n' });
  });
});

describe('keyrelay keys', () => {
  let keyId = '';
  let key = '';

  it('creates a key and prints it once, clearly, with a warning', async () => {
    const run = await cli(['keys', 'create', 'alice', '--name', 'laptop']);
    expect(run.code).toBe(0);
    const match = /^Created key (key_[A-Za-z0-9]+) for user alice\.\n\n {4}(sk-kr-[A-Za-z0-9]{40})\n\n/.exec(run.stdout);
    expect(match).not.toBeNull();
    keyId = match?.[1] ?? '';
    key = match?.[2] ?? '';
    registerSecret(key);
    expect(run.stdout).toBe(
      `Created key ${keyId} for user alice.\n\n    ${key}\n\n` +
        'This is the only time the key is shown: store it now. keyrelay keeps only a digest of it.\n' +
        `Lists show it by its prefix, ${key.slice(0, 10)}.\n`,
    );
    expect(run.stderr).toBe('');
    expect(await models(key)).toMatchObject({ status: 200, body: { object: 'list' } });
  });

  it('creates a key with --json: the JSON on stdout, the warning on stderr', async () => {
    const run = await cli(['keys', 'create', 'bob', '--json', '--expires-at', '2031-06-01T12:00:00+02:00']);
    expect(run.code).toBe(0);
    const created = JSON.parse(run.stdout) as Record<string, unknown>;
    registerSecret(String(created.key));
    expect(created).toEqual({
      id: expect.stringMatching(/^key_/),
      userId: 'bob',
      prefix: String(created.key).slice(0, 10),
      key: expect.stringMatching(/^sk-kr-[A-Za-z0-9]{40}$/),
      createdAt: expect.any(String),
      expiresAt: '2031-06-01T10:00:00.000Z',
    });
    expect(run.stderr).toBe('This is the only time the key is shown: store it now. keyrelay keeps only a digest of it.\n');
  });

  it("lists a user's keys as a table, without secrets", async () => {
    const run = await cli(['keys', 'list', 'alice']);
    expect(run.code).toBe(0);
    const listed = (await gateway.admin('GET', '/users/alice/keys')).json.data[0];
    expect(cells(run.stdout)).toEqual([
      ['ID', 'PREFIX', 'NAME', 'STATE', 'CREATED', 'EXPIRES', 'REVOKED'],
      [keyId, key.slice(0, 10), 'laptop', 'active', listed.createdAt, 'never', '-'],
    ]);
    expect(run.stdout).not.toContain(key);
  });

  it("lists a user's keys with --json: no key, no digest", async () => {
    const run = await cli(['keys', 'list', 'alice', '--json']);
    expect(run.code).toBe(0);
    const listed = JSON.parse(run.stdout);
    expect(listed).toEqual((await gateway.admin('GET', '/users/alice/keys')).json);
    expect(listed.data).toEqual([{ id: keyId, userId: 'alice', name: 'laptop', prefix: key.slice(0, 10), createdAt: expect.any(String) }]);
  });

  it('revokes a key; the relay then answers 401 for it', async () => {
    const run = await cli(['keys', 'revoke', keyId]);
    expect(run.code).toBe(0);
    const revokedAt = (await gateway.admin('GET', '/users/alice/keys')).json.data[0].revokedAt as string;
    expect(run.stdout).toBe(`Revoked key ${keyId} of user alice.\nprefix     ${key.slice(0, 10)}\nname       laptop\nrevokedAt  ${revokedAt}\n`);
    expect(await models(key)).toEqual({
      status: 401,
      body: {
        error: {
          message: 'Incorrect API key provided. Use a key issued by this keyrelay gateway.',
          type: 'invalid_request_error',
          param: null,
          code: 'invalid_api_key',
        },
      },
    });
    const list = await cli(['keys', 'list', 'alice']);
    expect(cells(list.stdout)[1]?.slice(3)).toEqual(['revoked', expect.any(String), 'never', revokedAt]);
  });

  it('says so when the key to revoke does not exist', async () => {
    expect(await cli(['keys', 'revoke', 'key_nope'])).toEqual({ code: 1, stdout: '', stderr: 'keyrelay: No key with that id. (not_found, HTTP 404)\n' });
  });
});

describe('keyrelay reaching the gateway', () => {
  it('takes --url and --token over the environment', async () => {
    const run = await cli(['users', 'show', 'bob', '--url', gateway.url, '--token', ADMIN_TOKEN], { KEYRELAY_URL: 'http://127.0.0.1:1', KEYRELAY_ADMIN_TOKEN: 'wrong-token-0123456789' });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^id {9}bob\n/);
  });

  it('says which URL could not be reached when the connection is refused', async () => {
    const port = await closedPort();
    const run = await cli(['users', 'list'], { KEYRELAY_URL: `http://127.0.0.1:${port}/`, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN });
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: `keyrelay: could not reach the gateway at http://127.0.0.1:${port} (connection refused)\nIs it running? Point the tool at it with KEYRELAY_URL or --url.\n`,
    });
  });

  it('says how to set the admin token when there is none', async () => {
    const run = await cli(['users', 'list'], { KEYRELAY_URL: gateway.url });
    expect(run).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'keyrelay: no admin token\n' +
        'Set KEYRELAY_ADMIN_TOKEN to the token the gateway was started with (export KEYRELAY_ADMIN_TOKEN=...), or pass --token.\n',
    });
  });

  it('maps a wrong admin token to the 401 and a hint, without printing the token', async () => {
    const wrong = 'wrong-admin-token-0123456789';
    const run = await cli(['users', 'list'], { KEYRELAY_URL: gateway.url, KEYRELAY_ADMIN_TOKEN: wrong });
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'keyrelay: The admin API needs the admin token. (invalid_api_key, HTTP 401)\n' +
        'Check KEYRELAY_ADMIN_TOKEN (or --token): it must be the token the gateway was started with.\n',
    });
  });

  it('explains a 404 from a gateway whose admin API is off', async () => {
    const closed = await startGateway({ env: { KEYRELAY_ADMIN_TOKEN: undefined } });
    try {
      const run = await cli(['users', 'list'], { KEYRELAY_URL: closed.url, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN });
      expect(run).toEqual({
        code: 1,
        stdout: '',
        stderr:
          'keyrelay: Unknown request URL: GET /admin/users. (unknown_url, HTTP 404)\n' +
          'Is the admin API enabled? The gateway needs KEYRELAY_ADMIN_TOKEN set when it starts.\n',
      });
    } finally {
      await closed.close();
    }
  });
});

describe('keyrelay usage and help', () => {
  it('prints the help for no arguments, help and --help, exit 0', async () => {
    const plain = await cli([]);
    expect(plain.code).toBe(0);
    expect(plain.stderr).toBe('');
    for (const line of ['usage: keyrelay <command> [options]', '  serve ', '  users create <id> ', '  users list ', '  users show <id> ', '  users delete <id> ', '  keys create <userId> ', '  keys list <userId> ', '  keys revoke <keyId> ', '  --json ']) {
      expect(plain.stdout).toContain(line);
    }
    expect(await cli(['help'])).toEqual(plain);
    expect(await cli(['--help'])).toEqual(plain);
  });

  it("prints one command's options for --help and for help <command>", async () => {
    const run = await cli(['users', 'create', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^usage: keyrelay users create <id> \[options\]\n/);
    for (const flag of ['--name NAME', '--models a,b', '--expires-at ISO', '--rpm N', '--tpm N', '--tokens-per-day N', '--tokens-per-month N', '--usd-per-day USD', '--usd-per-month USD', '--max-concurrent N', '--url URL', '--token TOKEN']) {
      expect(run.stdout).toContain(`  ${flag} `);
    }
    expect(await cli(['help', 'users', 'create'])).toEqual(run);
  });

  it('exits 2 with a short usage line for usage errors', async () => {
    expect(await cli(['users', 'create'])).toEqual({ code: 2, stdout: '', stderr: 'keyrelay: missing <id>\nusage: keyrelay users create <id> [options]\n' });
    expect(await cli(['users', 'list', 'extra'])).toEqual({ code: 2, stdout: '', stderr: 'keyrelay: unexpected argument "extra"\nusage: keyrelay users list [options]\n' });
    expect(await cli(['users', 'create', 'dave', '--rpm', 'ten'])).toEqual({ code: 2, stdout: '', stderr: 'keyrelay: --rpm: expected a whole number, got "ten"\nusage: keyrelay users create <id> [options]\n' });
    expect(await cli(['keys', 'create', 'bob', '--expires-at', 'soon'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'keyrelay: --expires-at: expected an ISO 8601 time like 2030-01-31T00:00:00Z, got "soon"\nusage: keyrelay keys create <userId> [options]\n',
    });
    expect(await cli(['keys', 'list', 'bob', '--colour'])).toEqual({ code: 2, stdout: '', stderr: 'keyrelay: unknown option --colour\nusage: keyrelay keys list <userId> [options]\n' });
    expect(await cli(['users', 'create', 'dave', '--name'])).toEqual({ code: 2, stdout: '', stderr: 'keyrelay: option --name needs a value\nusage: keyrelay users create <id> [options]\n' });
    expect(await cli(['serve', '--url', 'http://127.0.0.1:1'])).toEqual({ code: 2, stdout: '', stderr: 'keyrelay: unknown option --url\nusage: keyrelay serve\n' });
    expect(await cli(['--url', gateway.url, 'frobnicate'])).toEqual({ code: 2, stdout: '', stderr: 'keyrelay: unknown command "frobnicate"\nusage: keyrelay <command> [options]; "keyrelay help" lists the commands\n' });
    expect(await cli(['frobnicate'])).toEqual({ code: 2, stdout: '', stderr: 'keyrelay: unknown command "frobnicate"\nusage: keyrelay <command> [options]; "keyrelay help" lists the commands\n' });
    const group = await cli(['keys', 'rotate']);
    expect(group.code).toBe(2);
    expect(group.stderr).toMatch(/^keyrelay: unknown command "keys rotate"\nusage: keyrelay keys <command> \[options\]\n/);
    expect(await cli(['users', 'list', '--url', 'ftp://example.invalid'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'keyrelay: not an http(s) URL: "ftp://example.invalid"\nSet KEYRELAY_URL or pass --url, e.g. http://127.0.0.1:8080\n',
    });
    // Nothing reached the gateway for any of these.
    expect((await gateway.admin('GET', '/users/dave')).status).toBe(404);
  });
});
