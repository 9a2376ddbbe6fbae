// Bad input to /admin/audit and /admin/webhooks, and to the alerts settings: a 400 (or 404, 409)
// OpenAI-shaped error naming the field, and nothing changed: no webhook added or removed, no audit
// entry written. The signing secret is never shown.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, ConfigError, loadConfig } from '../src/config.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { SECRET_A } from './helpers/runtime-fixture.js';

const SECRET = 'whsec-hostile-input-0123456789abcdef';
registerSecret(SECRET);

let gateway: TestGateway;

beforeAll(async () => {
  gateway = await startGateway({
    env: { KEYRELAY_SECRET: SECRET_A },
    config: { alerts: { webhooks: [{ id: 'ops', url: 'https://hooks.example/ops', events: ['pool.exhausted'], secret: SECRET }], firstRetryMs: 1000, pollMs: 1000, timeoutMs: 10_000 } } as Partial<Config>,
  });
});
afterAll(async () => {
  await gateway?.close();
});

async function raw(method: string, path: string, body?: string) {
  const res = await fetch(`${gateway.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body,
  });
  const text = await res.text();
  expect(text).not.toContain(SECRET);
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const state = async () => ({
  webhooks: (await gateway.admin('GET', '/webhooks')).json,
  audit: (await gateway.admin('GET', '/audit?limit=1000')).json,
});

function expectError(answer: { status: number; json: any }, status: number, param: string | null, code?: string) {
  expect(answer.status).toBe(status);
  expect(answer.json.error).toMatchObject({ type: 'invalid_request_error', param });
  expect(typeof answer.json.error.message).toBe('string');
  if (code) expect(answer.json.error.code).toBe(code);
}

describe('POST /admin/webhooks with bad input', () => {
  const good = { url: 'https://hooks.example/a', events: ['quota.threshold'], secret: SECRET };
  const cases: Array<[string, unknown, string | null]> = [
    ['an ftp URL', { ...good, url: 'ftp://hooks.example/a' }, 'url'],
    ['a javascript: URL', { ...good, url: 'javascript:alert(1)' }, 'url'],
    ['a file URL', { ...good, url: 'file:///etc/passwd' }, 'url'],
    ['no URL at all', { ...good, url: 'not a url' }, 'url'],
    ['an http URL without a host', { ...good, url: 'http://' }, 'url'],
    ['a URL that is not a string', { ...good, url: 42 }, 'url'],
    ['an unknown event', { ...good, events: ['quota.threshold', 'pool.exploded'] }, 'events'],
    ['an event of another case', { ...good, events: ['Quota.Threshold'] }, 'events'],
    ['no events', { ...good, events: [] }, 'events'],
    ['events as a string', { ...good, events: 'quota.threshold' }, 'events'],
    ['a short secret', { ...good, secret: 'short' }, 'secret'],
    ['no secret', { url: good.url, events: good.events }, 'secret'],
    ['an unknown field', { ...good, signingKey: 'x' }, 'signingKey'],
    ['a bad id', { ...good, id: '../etc' }, 'id'],
  ];
  it.each(cases)('refuses %s, naming the field, and changes nothing', async (_what, body, param) => {
    const before = await state();
    expectError(await raw('POST', '/webhooks', JSON.stringify(body)), 400, param);
    expect(await state()).toEqual(before);
  });

  it('refuses an id the settings already use (409) and a duplicate one, changing nothing', async () => {
    const before = await state();
    expectError(await raw('POST', '/webhooks', JSON.stringify({ ...good, id: 'ops' })), 409, 'id', 'conflict');
    expect(await state()).toEqual(before);
    expect((await raw('POST', '/webhooks', JSON.stringify({ ...good, id: 'dup' }))).status).toBe(201);
    const after = await state();
    expectError(await raw('POST', '/webhooks', JSON.stringify({ ...good, id: 'dup', url: 'https://other.example/' })), 409, 'id', 'conflict');
    expect(await state()).toEqual(after);
  });

  it('shows webhooks without their secret, and refuses to delete one of the settings', async () => {
    const list = await raw('GET', '/webhooks');
    expect(list.json.data.find((w: any) => w.id === 'ops')).toEqual({ id: 'ops', url: 'https://hooks.example/ops', events: ['pool.exhausted'], source: 'settings', createdAt: null, last4: SECRET.slice(-4) });
    const before = await state();
    expectError(await raw('DELETE', '/webhooks/ops'), 409, null, 'read_only');
    expectError(await raw('DELETE', '/webhooks/nope'), 404, null, 'not_found');
    expectError(await raw('GET', '/webhooks/nope/deliveries'), 404, null, 'not_found');
    expect(await state()).toEqual(before);
  });

  it('refuses a bad deliveries query', async () => {
    for (const q of ['limit=0', 'limit=101', 'limit=abc', 'limit=1&limit=2']) expectError(await raw('GET', `/webhooks/ops/deliveries?${q}`), 400, 'limit');
    expectError(await raw('GET', '/webhooks/ops/deliveries?since=1'), 400, 'since');
  });

  it('answers 401 without the admin token, changing nothing', async () => {
    const before = await state();
    const res = await fetch(`${gateway.url}/admin/webhooks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(good) });
    expect(res.status).toBe(401);
    const audit = await fetch(`${gateway.url}/admin/audit`, { headers: { authorization: 'Bearer wrong-token-0123456789' } });
    expect(audit.status).toBe(401);
    expect(await state()).toEqual(before);
  });
});

describe('GET /admin/audit with a bad query', () => {
  const cases: Array<[string, string]> = [
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['limit=-1', 'limit'],
    ['limit=1.5', 'limit'],
    ['limit=ten', 'limit'],
    ['limit=', 'limit'],
    ['limit=1&limit=2', 'limit'],
    ['before=yesterday', 'before'],
    ['before=123', 'before'],
    ['before=1-2-3', 'before'],
    ['before=', 'before'],
    ['target=user%20alice', 'target'],
    ['target=', 'target'],
    [`target=${'x'.repeat(301)}`, 'target'],
    ['user=alice', 'user'],
  ];
  it.each(cases)('refuses ?%s naming %s', async (query, param) => {
    expectError(await raw('GET', `/audit?${query}`), 400, param);
  });

  it('takes a good query: limit, before and target together', async () => {
    for (const id of ['q1', 'q2', 'q3']) expect((await gateway.admin('POST', '/users', { id })).status).toBe(201);
    const page = (await raw('GET', '/audit?limit=2')).json.data;
    expect(page.map((e: any) => e.target)).toEqual(['user:q3', 'user:q2']);
    const next = (await raw('GET', `/audit?limit=2&before=${page[1].id}`)).json.data;
    expect(next[0].target).toBe('user:q1');
    expect((await raw('GET', `/audit?target=user:q2&before=${page[0].id}`)).json.data.map((e: any) => e.target)).toEqual(['user:q2']);
  });
});

describe('alerts settings', () => {
  const load = (alerts: unknown) => () => loadConfig({ KEYRELAY_CONFIG: undefined }, { alerts } as Partial<Config>);
  const hook = { url: 'https://hooks.example/a', events: ['pool.exhausted'], secret: SECRET };
  it.each([
    ['a URL that is not http(s)', { webhooks: [{ ...hook, url: 'ftp://x/' }] }, 'alerts/webhooks/0/url'],
    ['an http URL without a host', { webhooks: [{ ...hook, url: 'http://' }] }, 'alerts/webhooks/0/url'],
    ['an unknown event', { webhooks: [{ ...hook, events: ['pool.exploded'] }] }, 'alerts/webhooks/0/events/0'],
    ['a short secret', { webhooks: [{ ...hook, secret: 'short' }] }, 'alerts/webhooks/0/secret'],
    ['two webhooks of one id', { webhooks: [{ ...hook, id: 'a' }, { ...hook, id: 'a' }] }, 'alerts/webhooks/1/id'],
    ['an unknown setting', { webhooks: [], retries: 3 }, 'alerts'],
  ])('stop the start on %s, naming the setting', (_what, alerts, setting) => {
    expect(load(alerts)).toThrow(ConfigError);
    expect(load(alerts)).toThrow(`setting ${setting}`);
  });
  it('take good webhooks, with defaults', () => {
    const config = load({ webhooks: [hook] })();
    expect(config.alerts).toEqual({ webhooks: [hook], firstRetryMs: 1000, pollMs: 1000, timeoutMs: 10_000 });
    expect(config.audit).toEqual({ maxEntries: 100_000, maxAgeDays: 90 });
  });
});
