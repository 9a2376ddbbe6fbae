// The keyrelay command line against a real gateway: users and keys through the admin API, as
// tables and as JSON; a user's usage as a table of its windows; updates that keep the limits not
// named; a revoked key is refused by the relay; every failure says what to do.
import { createServer } from 'node:net';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { main } from '../src/cli.js';
import { type FakeUpstream, sseEvents, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { latch, until } from './helpers/quota-fixture.js';

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
  // Header cells may hold one blank (RESETS AT); columns are two blanks apart.
  const starts = [...header.matchAll(/\S+(?: \S+)*/g)].map((m) => m.index);
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

/** The user as the admin API stores it: its entry in GET /admin/users, which has no usage. */
async function record(id: string): Promise<any> {
  const { json } = await gateway.admin('GET', '/users');
  return (json.data as Array<{ id: string }>).find((u) => u.id === id);
}

/** The usage table of a user with no traffic and no limits, for the windows the API names now. */
async function idleUsage(id: string): Promise<string> {
  const { day, month } = (await gateway.admin('GET', `/users/${id}`)).json.usage;
  return (
    'WINDOW          REQUESTS  TOKENS  USD       RESERVED                LIMIT      RESETS AT\n' +
    `day ${day.window}  0         0       0.000000  0 tokens, 0.000000 USD  unlimited  ${day.resetsAt}\n` +
    `month ${month.window}   0         0       0.000000  0 tokens, 0.000000 USD  unlimited  ${month.resetsAt}\n` +
    'in flight       0         -       -         -                       unlimited  -\n'
  );
}

/** Dollars from micro-dollars, worked out apart from the tool's own integer arithmetic. */
const usd = (micros: number): string => (micros / 1_000_000).toFixed(6);

async function chat(key: string, body: Record<string, unknown>): Promise<{ status: number; text: string }> {
  const res = await fetch(`${gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100, ...body }),
  });
  return { status: res.status, text: await res.text() };
}

async function settled(id: string): Promise<void> {
  await until(async () => (await gateway.admin('GET', `/users/${id}`)).json.usage.concurrent.inFlight === 0, 'the requests to settle');
}

describe('keyrelay users', () => {
  it('creates a user with every option and shows it as a field list', async () => {
    const run = await cli([
      'users', 'create', 'alice', '--name', 'Alice A', '--models', 'gpt-4o*, o3', '--expires-at', '2030-01-31',
      '--rpm', '60', '--tpm', '10000', '--tokens-per-day', '100000', '--tokens-per-month', '1000000',
      '--usd-per-day', '1.5', '--usd-per-month', '20', '--max-concurrent', '2',
    ]);
    const stored = await record('alice');
    expect(stored).toEqual({
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
        `createdAt  ${stored.createdAt}\n` +
        'limits     rpm=60 tpm=10000 tokensPerDay=100000 tokensPerMonth=1000000 usdPerDay=1.5 usdPerMonth=20 maxConcurrent=2\n',
    });
  });

  it('allows a user the operations refused unless allowed (--allow), replaces and removes them, and refuses unknown names', async () => {
    const created = await cli(['users', 'create', 'minter', '--allow', 'realtime_client_secrets, chatkit_sessions']);
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('allow      realtime_client_secrets, chatkit_sessions\n');
    expect((await record('minter')).allow).toEqual(['realtime_client_secrets', 'chatkit_sessions']);
    expect((await cli(['users', 'update', 'minter', '--allow', 'fine_tuning'])).code).toBe(0);
    expect((await record('minter')).allow).toEqual(['fine_tuning']);
    const wrong = await cli(['users', 'update', 'minter', '--allow', 'fine_tuning,everything']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('unknown everything');
    expect((await cli(['users', 'update', 'minter', '--allow', 'graders', '--allow-none'])).code).not.toBe(0);
    expect((await record('minter')).allow).toEqual(['fine_tuning']);
    const none = await cli(['users', 'update', 'minter', '--allow-none']);
    expect(none.stdout).not.toContain('allow ');
    expect((await record('minter')).allow).toBeUndefined();
    // The tests after this one list the users.
    expect((await cli(['users', 'delete', 'minter'])).code).toBe(0);
  });

  it('creates a user with --json and prints the API answer as it came', async () => {
    const run = await cli(['users', 'create', 'bob', '--json']);
    expect(run.code).toBe(0);
    const stored = await record('bob');
    expect(JSON.parse(run.stdout)).toEqual(stored);
    expect(stored).toEqual({ id: 'bob', limits: {}, createdAt: expect.any(String) });
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

  it('shows one user: its fields, then its usage in each current window', async () => {
    const run = await cli(['users', 'show', 'bob']);
    const { createdAt } = await record('bob');
    expect(run).toEqual({
      code: 0,
      stderr: '',
      stdout: `id         bob\nname       -\nmodels     any\nexpiresAt  never\ncreatedAt  ${createdAt}\nlimits     unlimited\n\n${await idleUsage('bob')}`,
    });
  });

  it('shows every limit of a user in the usage table, the minute buckets full', async () => {
    const run = await cli(['users', 'show', 'alice']);
    const { json } = await gateway.admin('GET', '/users/alice');
    const { day, month } = json.usage;
    expect(run).toEqual({
      code: 0,
      stderr: '',
      stdout:
        'id         alice\n' +
        'name       Alice A\n' +
        'models     gpt-4o*, o3\n' +
        'expiresAt  2030-01-31T00:00:00.000Z\n' +
        `createdAt  ${json.createdAt}\n` +
        'limits     rpm=60 tpm=10000 tokensPerDay=100000 tokensPerMonth=1000000 usdPerDay=1.5 usdPerMonth=20 maxConcurrent=2\n' +
        '\n' +
        'WINDOW          REQUESTS  TOKENS  USD       RESERVED                LIMIT                          RESETS AT\n' +
        `day ${day.window}  0         0       0.000000  0 tokens, 0.000000 USD  100000 tokens, 1.500000 USD    ${day.resetsAt}\n` +
        `month ${month.window}   0         0       0.000000  0 tokens, 0.000000 USD  1000000 tokens, 20.000000 USD  ${month.resetsAt}\n` +
        'minute          0         0       -         -                       60 requests, 10000 tokens      -\n' +
        'in flight       0         -       -         -                       2 at once                      -\n',
    });
  });

  it('shows spent, estimated, reserved and in-flight usage against the limits', async () => {
    // Slow buckets, so that what the table shows of them holds for seconds: 3 requests and 1,000
    // tokens a minute refill one request in 20 s and one token in 60 ms.
    const limits = { rpm: 3, tpm: 1000, tokensPerDay: 200_000, usdPerMonth: 10, maxConcurrent: 3 };
    const key = await gateway.createUserKey('erin', { limits });
    registerSecret(key);
    const arrived = latch();
    const release = latch();
    let held: Promise<{ status: number; text: string }> | undefined;
    try {
      expect((await chat(key, {})).status).toBe(200);
      // A stream that breaks off: its usage is the gateway's own estimate.
      const words = ['Once', ' upon', ' a', ' time'].map((content) => ({ id: 'chatcmpl-b', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content }, finish_reason: null }] }));
      upstream.handle(() => ({ headers: { 'content-type': 'text/event-stream' }, chunks: sseEvents(words, { done: true }), destroyAfterChunks: 2 }));
      expect((await chat(key, { stream: true })).text).toContain('upstream_stream_interrupted');
      await settled('erin');
      upstream.reset();
      // One request held at the upstream: its worst case stays reserved while the table is made.
      upstream.handle(async () => {
        arrived.open();
        await release.wait;
        return undefined;
      });
      held = chat(key, {});
      await arrived.wait;

      const run = await cli(['users', 'show', 'erin']);
      const { json } = await gateway.admin('GET', '/users/erin');
      const { day, month } = json.usage;
      expect(day).toMatchObject({ requests: 3, estimatedRequests: 1 });
      // Every figure below is one that could be shown wrongly: none is zero.
      for (const figure of [day.tokens, day.usdMicros, day.reservedTokens, day.reservedUsdMicros]) expect(figure).toBeGreaterThan(0);
      expect(run.code).toBe(0);
      const [fields, usage] = run.stdout.split('\n\n');
      expect(fields).toMatch(/^id {9}erin\n(.*\n){4}limits {5}rpm=3 tpm=1000 tokensPerDay=200000 usdPerMonth=10 maxConcurrent=3$/);
      const rows = cells(usage ?? '');
      const reserved = (w: typeof day): string => `${w.reservedTokens} tokens, ${usd(w.reservedUsdMicros)} USD`;
      expect(rows).toEqual([
        ['WINDOW', 'REQUESTS', 'TOKENS', 'USD', 'RESERVED', 'LIMIT', 'RESETS AT'],
        [`day ${day.window}`, '3 (1 estimated)', String(day.tokens), usd(day.usdMicros), reserved(day), '200000 tokens', day.resetsAt],
        [`month ${month.window}`, '3 (1 estimated)', String(month.tokens), usd(month.usdMicros), reserved(month), '10.000000 USD', month.resetsAt],
        // What the buckets lack now: they refill as time passes, the tokens one faster.
        ['minute', '3', expect.stringMatching(/^[1-9][0-9]*$/), '-', '-', '3 requests, 1000 tokens', expect.stringMatching(/^in [1-6]?[0-9]\.[0-9] s$/)],
        ['in flight', '1', '-', '-', '-', '3 at once', '-'],
      ]);
      expect(Number(rows[3]?.[2])).toBeLessThanOrEqual(day.tokens + day.reservedTokens);
    } finally {
      release.open();
      await held;
      upstream.reset();
    }
  });

  it('shows one user with --json as the API answers it, usage included', async () => {
    const run = await cli(['users', 'show', 'bob', '--json']);
    expect(run.code).toBe(0);
    const shown = JSON.parse(run.stdout);
    expect(shown).toEqual((await gateway.admin('GET', '/users/bob')).json);
    expect(Object.keys(shown.usage)).toEqual(['day', 'month', 'minute', 'concurrent']);
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

describe('keyrelay users update', () => {
  const LIMITS = { rpm: 60, tpm: 10_000, tokensPerDay: 100_000, usdPerDay: 1.5, maxConcurrent: 2 };

  beforeAll(async () => {
    expect((await gateway.admin('POST', '/users', { id: 'frank', name: 'Frank', models: ['gpt-4o*'], expiresAt: '2030-01-31T00:00:00.000Z', limits: LIMITS })).status).toBe(201);
  });

  it('changes one limit and keeps the others, the name, models and expiry', async () => {
    const run = await cli(['users', 'update', 'frank', '--rpm', '10', '--usd-per-month', '25.5']);
    const stored = await record('frank');
    expect(stored).toEqual({
      id: 'frank',
      name: 'Frank',
      models: ['gpt-4o*'],
      expiresAt: '2030-01-31T00:00:00.000Z',
      limits: { ...LIMITS, rpm: 10, usdPerMonth: 25.5 },
      createdAt: expect.any(String),
    });
    expect(run).toEqual({
      code: 0,
      stderr: '',
      stdout:
        'Updated user frank.\n' +
        'id         frank\n' +
        'name       Frank\n' +
        'models     gpt-4o*\n' +
        'expiresAt  2030-01-31T00:00:00.000Z\n' +
        `createdAt  ${stored.createdAt}\n` +
        'limits     rpm=10 tpm=10000 tokensPerDay=100000 usdPerDay=1.5 usdPerMonth=25.5 maxConcurrent=2\n',
    });
  });

  it('removes one limit given as "unlimited"', async () => {
    expect((await cli(['users', 'update', 'frank', '--tpm', 'unlimited', '--max-concurrent', 'unlimited'])).code).toBe(0);
    expect((await record('frank')).limits).toEqual({ rpm: 10, tokensPerDay: 100_000, usdPerDay: 1.5, usdPerMonth: 25.5 });
  });

  it('changes name, models and expiry without touching the limits', async () => {
    const run = await cli(['users', 'update', 'frank', '--name', 'Frank F', '--models', 'o3,gpt-5*', '--expires-at', '2032-02-29T12:00:00+01:00']);
    expect(run.code).toBe(0);
    expect(await record('frank')).toEqual({
      id: 'frank',
      name: 'Frank F',
      models: ['o3', 'gpt-5*'],
      expiresAt: '2032-02-29T11:00:00.000Z',
      limits: { rpm: 10, tokensPerDay: 100_000, usdPerDay: 1.5, usdPerMonth: 25.5 },
      createdAt: expect.any(String),
    });
  });

  it('takes away the expiry and the model list with --no-expiry and --any-model', async () => {
    const run = await cli(['users', 'update', 'frank', '--no-expiry', '--any-model']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('\nmodels     any\nexpiresAt  never\n');
    const stored = await record('frank');
    expect(stored).not.toHaveProperty('expiresAt');
    expect(stored.models).toEqual([]);
  });

  it('replaces the limits with those given when --clear-limits is given too', async () => {
    expect((await cli(['users', 'update', 'frank', '--clear-limits', '--tokens-per-month', '5000'])).code).toBe(0);
    expect((await record('frank')).limits).toEqual({ tokensPerMonth: 5000 });
  });

  it('removes every limit with --clear-limits alone', async () => {
    const run = await cli(['users', 'update', 'frank', '--clear-limits']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('\nlimits     unlimited\n');
    expect((await record('frank')).limits).toEqual({});
  });

  it('prints the API answer with --json', async () => {
    const run = await cli(['users', 'update', 'frank', '--json', '--rpm', '7']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual(await record('frank'));
    expect((await record('frank')).limits).toEqual({ rpm: 7 });
  });

  it('says so when the user does not exist, with or without limits to merge', async () => {
    const missing = { code: 1, stdout: '', stderr: 'keyrelay: No user with that id. (not_found, HTTP 404)\n' };
    expect(await cli(['users', 'update', 'nobody', '--rpm', '1'])).toEqual(missing);
    expect(await cli(['users', 'update', 'nobody', '--name', 'N'])).toEqual(missing);
    expect((await gateway.admin('GET', '/users/nobody')).status).toBe(404);
  });

  it('exits 2 for nothing to change, contradicting options and bad values, changing nothing', async () => {
    const before = await record('frank');
    const usage = 'usage: keyrelay users update <id> [options]\n';
    expect(await cli(['users', 'update', 'frank'])).toEqual({ code: 2, stdout: '', stderr: `keyrelay: nothing to change; "keyrelay users update --help" lists the options\n${usage}` });
    expect(await cli(['users', 'update', 'frank', '--expires-at', '2030-01-01', '--no-expiry'])).toEqual({ code: 2, stdout: '', stderr: `keyrelay: --expires-at and --no-expiry contradict each other\n${usage}` });
    expect(await cli(['users', 'update', 'frank', '--models', 'o3', '--any-model'])).toEqual({ code: 2, stdout: '', stderr: `keyrelay: --models and --any-model contradict each other\n${usage}` });
    expect(await cli(['users', 'update', 'frank', '--name', 'X', '--rpm', 'lots'])).toEqual({ code: 2, stdout: '', stderr: `keyrelay: --rpm: expected a whole number or "unlimited", got "lots"\n${usage}` });
    expect(await cli(['users', 'update', 'frank', '--usd-per-day', '$3'])).toEqual({
      code: 2,
      stdout: '',
      stderr: `keyrelay: --usd-per-day: expected an amount in US dollars like 12.5 or "unlimited", got "$3"\n${usage}`,
    });
    expect(await cli(['users', 'create', 'gina', '--rpm', 'unlimited'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'keyrelay: --rpm: expected a whole number, got "unlimited"\nusage: keyrelay users create <id> [options]\n',
    });
    expect(await record('frank')).toEqual(before);
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
    for (const line of ['usage: keyrelay <command> [options]', '  serve ', '  users create <id> ', '  users list ', '  users show <id> ', '  users update <id> ', '  users delete <id> ', '  keys create <userId> ', '  keys list <userId> ', '  keys revoke <keyId> ', '  --json ']) {
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

  it('lists the options of users update, the limit flags saying how to remove one', async () => {
    const run = await cli(['help', 'users', 'update']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^usage: keyrelay users update <id> \[options\]\n/);
    for (const flag of ['--name NAME', '--models a,b', '--any-model', '--expires-at ISO', '--no-expiry', '--rpm N', '--usd-per-month USD', '--max-concurrent N', '--clear-limits']) {
      expect(run.stdout).toContain(`  ${flag} `);
    }
    expect(run.stdout).toMatch(/ --rpm N +limit: requests per minute; "unlimited" removes it\n/);
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
