// `keyrelay usage` against a real gateway: a table by day, model or user with right-aligned
// figures and a total; --json as the API gave it; --csv for spreadsheets; mistakes say what to do.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { FAKE_COMPLETION_TOKENS, promptTokens } from '../src/dev/fake-openai-answers.js';
import { dollars } from '../src/cli/format.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { type ObservedGateway, chat, keptRecords, post, startObservedGateway } from './helpers/observability-fixture.js';

const POOL_KEY = 'sk-pool-usagecli-0123456789abcdef';
registerSecret(ADMIN_TOKEN);

let env: ObservedGateway;
const today = new Date().toISOString().slice(0, 10);
const month = `${today.slice(0, 7)}-01`;
const prices = new PriceTable({});
const chatInput = promptTokens([{ role: 'user', content: 'one' }]) + promptTokens([{ role: 'user', content: 'two' }]);
const chatUsage = { input: chatInput, cachedInput: 0, output: 2 * FAKE_COMPLETION_TOKENS };
const embedInput = promptTokens('embed');
const aliceMicros =
  costMicros(prices.lookup('gpt-4o-mini')!, { input: promptTokens([{ role: 'user', content: 'one' }]), cachedInput: 0, output: FAKE_COMPLETION_TOKENS }) +
  costMicros(prices.lookup('gpt-4o-mini')!, { input: promptTokens([{ role: 'user', content: 'two' }]), cachedInput: 0, output: FAKE_COMPLETION_TOKENS });
const bobMicros = costMicros(prices.lookup('text-embedding-3-small')!, { input: embedInput, cachedInput: 0, output: 0 });

beforeAll(async () => {
  env = await startObservedGateway(POOL_KEY, 'memory');
  const alice = await env.gateway.createUserKey('alice');
  const bob = await env.gateway.createUserKey('bob');
  registerSecret(alice);
  registerSecret(bob);
  await post(env.gateway, alice, '/chat/completions', chat('one'));
  await post(env.gateway, alice, '/chat/completions', chat('two'));
  await post(env.gateway, bob, '/embeddings', { model: 'text-embedding-3-small', input: 'embed' });
  await keptRecords(env.gateway, 3);
});
afterAll(async () => {
  await env.close();
});

async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: { KEYRELAY_URL: env.gateway.url, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN },
  });
  return { code, stdout, stderr };
}

/** The table's rows as cells, after checking that figures are right-aligned under their header. */
function rows(table: string, textColumns: number): string[][] {
  const lines = table.trimEnd().split('\n');
  const header = lines[0] ?? '';
  const ends = [...header.matchAll(/\S+(?: \S+)?/g)].map((m) => (m.index ?? 0) + m[0].length);
  return lines.map((line) => {
    const cells = [...line.matchAll(/\S+(?: \S+)?/g)];
    const figures = cells.slice(-(ends.length - textColumns));
    figures.forEach((m, i) => expect((m.index ?? 0) + m[0].length, `column ${i} of "${line}"`).toBe(ends[textColumns + i]));
    return cells.map((m) => m[0]);
  });
}

describe('keyrelay usage', () => {
  it('prints this month by day as a table with a total', async () => {
    const run = await cli('usage');
    expect(run.code).toBe(0);
    const [title, blank, ...rest] = run.stdout.split('\n');
    expect(title).toBe(`Usage from ${month} to ${today} (UTC), all users, by day:`);
    expect(blank).toBe('');
    // Under the table, what its request columns count.
    expect(rest.slice(-3)).toEqual([
      '',
      'REQUESTS: relayed, and refused by the gateway for the user. ERRORS: refused by the gateway (400, 403, 429, ...) or answered with an error by the upstream.',
      '',
    ]);
    const table = rest.slice(0, -3);
    const total = [String(3), '0', String(chatInput + embedInput), '0', String(chatUsage.output), String(chatInput + embedInput + chatUsage.output), dollars(aliceMicros + bobMicros)];
    expect(rows(table.join('\n'), 1)).toEqual([
      ['DAY', 'REQUESTS', 'ERRORS', 'INPUT', 'CACHED', 'OUTPUT', 'TOKENS', 'COST USD'],
      [today, ...total],
      ['TOTAL', ...total],
    ]);
  });

  it('groups by user or model, for one user, over a span', async () => {
    const byUser = await cli('usage', '--group-by', 'user', '--from', month, '--to', today);
    expect(rows(byUser.stdout.split('\n').slice(2, -3).join('\n'), 1).map((r) => [r[0], r[1], r[7]])).toEqual([
      ['USER', 'REQUESTS', 'COST USD'],
      ['alice', '2', dollars(aliceMicros)],
      ['bob', '1', dollars(bobMicros)],
      ['TOTAL', '3', dollars(aliceMicros + bobMicros)],
    ]);
    const bob = await cli('usage', '--user', 'bob', '--group-by', 'day,model');
    expect(bob.stdout.split('\n')[0]).toBe(`Usage from ${month} to ${today} (UTC), user bob, by day and model:`);
    expect(rows(bob.stdout.split('\n').slice(2, -3).join('\n'), 2).map((r) => r.slice(0, 3))).toEqual([
      ['DAY', 'MODEL', 'REQUESTS'],
      [today, 'text-embedding-3-small', '1'],
      ['TOTAL', '1', '0'],
    ]);
  });

  it('says so when there is nothing in the span', async () => {
    const run = await cli('usage', '--from', '2001-01-01', '--to', '2001-01-31');
    expect(run).toEqual({ code: 0, stdout: 'Usage from 2001-01-01 to 2001-01-31 (UTC), all users, by day: no requests.\n', stderr: '' });
  });

  it('--json prints the API answer, --csv a spreadsheet-safe CSV', async () => {
    const json = await cli('usage', '--group-by', 'model', '--json');
    expect(JSON.parse(json.stdout)).toEqual((await env.gateway.admin('GET', '/usage?groupBy=model')).json);
    const csv = await cli('usage', '--group-by', 'model', '--csv');
    expect(csv.stdout).toBe(
      'model,requests,errors,input_tokens,cached_input_tokens,output_tokens,total_tokens,cost_usd\r\n' +
        `gpt-4o-mini,2,0,${chatInput},0,${chatUsage.output},${chatInput + chatUsage.output},${dollars(aliceMicros)}\r\n` +
        `text-embedding-3-small,1,0,${embedInput},0,0,${embedInput},${dollars(bobMicros)}\r\n`,
    );
  });

  it('refuses what it cannot do, with the usage line', async () => {
    expect(await cli('usage', '--json', '--csv')).toEqual({ code: 2, stdout: '', stderr: 'keyrelay: --json and --csv: choose one\nusage: keyrelay usage [options]\n' });
    expect((await cli('usage', '--from', 'yesterday')).stderr).toBe('keyrelay: --from: expected a day like 2030-01-31, got "yesterday"\nusage: keyrelay usage [options]\n');
    expect((await cli('usage', '--group-by', 'week')).code).toBe(2);
  });
});
