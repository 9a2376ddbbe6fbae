// `keyrelay audit` and `keyrelay webhooks` against a real gateway: the signing secret goes in on
// standard input and never comes out, no option takes it, bad input gets the API's message, and
// every command has its help.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import type { Config } from '../src/config.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { SECRET_A } from './helpers/runtime-fixture.js';
import { type WebhookReceiver, startWebhookReceiver } from './helpers/webhook-receiver.js';

const SECRET = 'whsec-cli-test-0123456789abcdefgh';
const POOL_KEY = 'sk-pool-cli-webhooks-0123456789abcdef';
registerSecret(SECRET);
registerPoolKey(POOL_KEY);

let gateway: TestGateway;
let receiver: WebhookReceiver;

beforeAll(async () => {
  receiver = await startWebhookReceiver(SECRET);
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_SECRET: SECRET_A }, config: { alerts: { webhooks: [], firstRetryMs: 100, pollMs: 100, timeoutMs: 5000 } } as Partial<Config> });
});
afterAll(async () => {
  await gateway?.close();
  await receiver?.close();
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
  expect(stdout + stderr).not.toContain(SECRET);
  expect(stdout + stderr).not.toContain(ADMIN_TOKEN);
  return { code, stdout, stderr };
}

describe('keyrelay webhooks', () => {
  it('adds a webhook with the secret from stdin, lists it, shows its deliveries, removes it', async () => {
    const added = await cli(['webhooks', 'add', receiver.url, '--events', 'pool.exhausted,pool_key.disabled', '--id', 'cli-hook'], `${SECRET}\n`);
    expect(added).toMatchObject({ code: 0, stderr: '' });
    expect(added.stdout).toContain('Added webhook cli-hook.');
    const listed = await cli(['webhooks', 'list']);
    expect(listed.stdout).toMatch(new RegExp(`cli-hook\\s+http://127\\.0\\.0\\.1:\\d+/hook\\s+pool\\.exhausted,pool_key\\.disabled\\s+store\\s+…${SECRET.slice(-4)}\\s`));
    expect(added.stdout).toContain(`…${SECRET.slice(-4)}`);
    const none = await cli(['webhooks', 'deliveries', 'nope']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('No webhook with that id.');
    const removed = await cli(['webhooks', 'remove', 'cli-hook']);
    expect(removed).toMatchObject({ code: 0, stdout: 'Removed webhook cli-hook.\n' });
    expect((await cli(['webhooks', 'list', '--json'])).stdout).toBe(`${JSON.stringify({ data: [] }, null, 2)}\n`);
  });

  it('shows the attempts of a delivery', async () => {
    expect((await cli(['webhooks', 'add', receiver.url, '--events', 'pool_key.disabled', '--id', 'cli-seen'], `${SECRET}\n`)).code).toBe(0);
    expect((await gateway.admin('POST', '/upstreams/default/keys/env-1/disable')).status).toBe(200);
    await receiver.until((got) => got.some((r) => r.event.type === 'pool_key.disabled'));
    // The secret went in whole (a trailing newline dropped): every delivery checks under it.
    expect(receiver.received.every((r) => r.verified)).toBe(true);
    let shown = '';
    for (let i = 0; i < 50 && !shown.includes('pool_key.disabled'); i++) {
      shown = (await cli(['webhooks', 'deliveries', 'cli-seen'])).stdout;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(shown).toMatch(/TIME\s+EVENT\s+EVENT ID\s+ATTEMPT\s+STATUS\s+RESULT\s+NEXT/);
    expect(shown).toMatch(/pool_key\.disabled\s+evt_\w+\s+1\s+200\s+ok\s+-/);
    await gateway.admin('POST', '/upstreams/default/keys/env-1/enable');
    await cli(['webhooks', 'remove', 'cli-seen']);
  });

  it('refuses a secret as an argument, a missing secret, a bad URL and an unknown event', async () => {
    const asArgument = await cli(['webhooks', 'add', receiver.url, '--events', 'pool.exhausted', '--secret', SECRET.slice(0, 10)]);
    expect(asArgument.code).toBe(2);
    const missing = await cli(['webhooks', 'add', receiver.url, '--events', 'pool.exhausted'], '');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('read nothing; pipe it in on standard input');
    const badUrl = await cli(['webhooks', 'add', 'ftp://127.0.0.1/x', '--events', 'pool.exhausted'], SECRET);
    expect(badUrl.code).toBe(1);
    expect(badUrl.stderr).toContain('`url` must be an http:// or https:// URL.');
    const badEvent = await cli(['webhooks', 'add', receiver.url, '--events', 'pool.exploded'], SECRET);
    expect(badEvent.code).toBe(1);
    expect(badEvent.stderr).toContain('Unknown event: "pool.exploded"');
    const noEvents = await cli(['webhooks', 'add', receiver.url], SECRET);
    expect(noEvents.code).toBe(2);
    expect((await gateway.admin('GET', '/webhooks')).json.data).toEqual([]);
  });
});

describe('keyrelay audit', () => {
  it('shows admin changes newest first, filtered and paged', async () => {
    for (const id of ['cli-a', 'cli-b']) await gateway.admin('POST', '/users', { id });
    await gateway.admin('PATCH', '/users/cli-a', { name: 'A' });
    const all = await cli(['audit']);
    expect(all.code).toBe(0);
    const lines = all.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+ACTOR\s+ACTION\s+TARGET\s+IP\s+REQUEST\s+ID$/);
    expect(lines[1]).toMatch(/admin\s+user\.update\s+user:cli-a\s+127\.0\.0\.1/);
    const ofA = await cli(['audit', '--target', 'user:cli-a', '--json']);
    const data = JSON.parse(ofA.stdout).data as Array<{ action: string; id: string }>;
    expect(data.map((e) => e.action)).toEqual(['user.update', 'user.create']);
    const older = await cli(['audit', '--target', 'user:cli-a', '--before', data[0]!.id, '--limit', '1']);
    expect(older.stdout).toContain('user.create');
    expect(older.stdout).toContain('Older entries: keyrelay audit --before');
    const bad = await cli(['audit', '--limit', '5000']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('`limit` must be a whole number from 1 to 1000.');
    expect((await cli(['audit', '--before', 'yesterday'])).stderr).toContain('`before` must be the `id` of an audit entry');
  });
});

describe('help', () => {
  it.each([['audit'], ['webhooks', 'list'], ['webhooks', 'add'], ['webhooks', 'remove'], ['webhooks', 'deliveries']])('for %s', async (...words) => {
    const shown = await cli(['help', ...words]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`usage: keyrelay ${words.join(' ')}`);
  });
  it('lists the commands', async () => {
    const general = await cli(['help']);
    expect(general.stdout).toContain('audit');
    expect(general.stdout).toContain('webhooks add <url>');
    const group = await cli(['webhooks', '--help']);
    expect(group.stdout).toContain('webhooks deliveries <id>');
    expect((await cli(['help', 'webhooks', 'add'])).stdout).toContain('read from standard input');
  });
});
