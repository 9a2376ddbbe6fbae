// A user's `origins` narrow cors.origins (README, "The relay"; docs/browsers.md): their key
// used from another page, or with no Origin at all, is refused 403 origin_not_allowed before the
// upstream, with nothing charged; the admin API checks each origin and writes it as browsers do.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { registerSecret } from './helpers/log-capture.js';

const PAGE = 'https://chat.example';
const SECOND = 'https://second.example';

let relay: RelayFixture;

function chat(key: string, origin: string | undefined) {
  return request(`${relay.gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...(origin === undefined ? {} : { origin }) },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
  });
}

async function usage(userId: string): Promise<{ requests: number; tokens: number; reservedTokens: number }> {
  const { json } = await relay.gateway.admin('GET', `/users/${userId}`);
  return { requests: json.usage.day.requests, tokens: json.usage.day.tokens, reservedTokens: json.usage.day.reservedTokens };
}

beforeAll(async () => {
  relay = await startRelay('sk-pool-cors-users-1', {}, { cors: { origins: [PAGE, SECOND] } });
});
afterAll(() => relay.close());

describe("a user's origins", () => {
  let key: string;
  beforeAll(async () => {
    key = await relay.gateway.createUserKey('page-user', { origins: [PAGE], limits: { rpm: 100, tokensPerDay: 100_000 } });
    registerSecret(key);
  });

  it('let their key work from their page', async () => {
    const res = await chat(key, PAGE);
    expect(res.statusCode).toBe(200);
    await res.body.json();
    expect(res.headers['access-control-allow-origin']).toBe(PAGE);
  });

  it('refuse it from another listed page: 403 origin_not_allowed, readable by that page, nothing relayed or charged', async () => {
    const before = await usage('page-user');
    const sent = relay.fake.requests.length;
    const res = await chat(key, SECOND);
    expect(res.statusCode).toBe(403);
    expect(await res.body.json()).toEqual({
      error: { message: `This key may not be used from pages of ${SECOND}.`, type: 'invalid_request_error', param: null, code: 'origin_not_allowed' },
    });
    expect(res.headers['access-control-allow-origin']).toBe(SECOND);
    expect(res.headers['x-request-id']).toBeDefined();
    expect(relay.fake.requests.length).toBe(sent);
    expect(await usage('page-user')).toEqual(before);
    const line = relay.gateway.logs.find((l) => l.requestId === res.headers['x-keyrelay-request-id']);
    expect(line).toMatchObject({ status: 403, errorCode: 'origin_not_allowed', userId: 'page-user' });
  });

  it('refuse it with no Origin at all (a user with origins is one for browser pages)', async () => {
    const before = await usage('page-user');
    const sent = relay.fake.requests.length;
    const res = await chat(key, undefined);
    expect(res.statusCode).toBe(403);
    expect(((await res.body.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'origin_not_allowed',
      message: 'This key may be used only from the browser pages its user allows, and the request has no Origin header.',
    });
    expect(relay.fake.requests.length).toBe(sent);
    expect(await usage('page-user')).toEqual(before);
  });

  it('follow a change at once: null lets any page and any client use the key again', async () => {
    expect((await relay.gateway.admin('PATCH', '/users/page-user', { origins: [SECOND] })).json.origins).toEqual([SECOND]);
    const moved = await chat(key, PAGE);
    expect(moved.statusCode).toBe(403);
    await moved.body.dump();
    const patched = await relay.gateway.admin('PATCH', '/users/page-user', { origins: null });
    expect(patched.status).toBe(200);
    expect(patched.json.origins).toBeUndefined();
    for (const origin of [PAGE, undefined]) {
      const res = await chat(key, origin);
      expect(res.statusCode, String(origin)).toBe(200);
      await res.body.dump();
    }
  });

  it('"*" is any page, and any client', async () => {
    const star = await relay.gateway.createUserKey('star-user', { origins: ['*'] });
    registerSecret(star);
    for (const origin of [PAGE, 'https://elsewhere.example', undefined]) {
      const res = await chat(star, origin);
      expect(res.statusCode, String(origin)).toBe(200);
      await res.body.dump();
    }
  });
});

describe('the admin API', () => {
  it('writes each origin as browsers send it, without repeats', async () => {
    const created = await relay.gateway.admin('POST', '/users', { id: 'norm-user', origins: ['HTTPS://Chat.Example:443', 'https://chat.example', 'http://[::1]:8080', 'chrome-extension://ABCdef'] });
    expect(created.status).toBe(201);
    expect(created.json.origins).toEqual(['https://chat.example', 'http://[::1]:8080', 'chrome-extension://abcdef']);
    expect((await relay.gateway.admin('GET', '/users/norm-user')).json.origins).toEqual(created.json.origins);
  });

  it.each([
    ['a path', ['https://chat.example/app'], 'origins.0', 'an origin has no path, query or fragment'],
    ['a trailing slash', ['https://ok.example', 'https://chat.example/'], 'origins.1', 'an origin has no path, query or fragment'],
    ['no scheme', ['chat.example'], 'origins.0', 'expected scheme://host[:port] or *'],
    ['a user name', ['https://me@chat.example'], 'origins.0', 'an origin has no user name or password'],
    ['a bad port', ['https://chat.example:99999'], 'origins.0', 'its host or port does not parse'],
  ])('refuses %s, naming the item, and creates nothing', async (_what, origins, param, reason) => {
    const id = `bad-${param.replace('.', '-')}-${origins.length}-${reason.length}`;
    const res = await relay.gateway.admin('POST', '/users', { id, origins });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', param, code: 'invalid_request' });
    expect(res.json.error.message).toContain(reason);
    expect(res.json.error.message).toContain(`\`${param}\``);
    expect((await relay.gateway.admin('GET', `/users/${id}`)).status).toBe(404);
  });

  it('refuses a bad origin on a change and keeps what was set', async () => {
    await relay.gateway.admin('POST', '/users', { id: 'keep-user', origins: [PAGE] });
    const res = await relay.gateway.admin('PATCH', '/users/keep-user', { origins: ['ftp:/nope'] });
    expect(res.status).toBe(400);
    expect(res.json.error.param).toBe('origins.0');
    expect((await relay.gateway.admin('GET', '/users/keep-user')).json.origins).toEqual([PAGE]);
  });

  it('refuses origins that are not a list of strings, naming the field', async () => {
    const res = await relay.gateway.admin('POST', '/users', { id: 'type-user', origins: 'https://chat.example' });
    expect(res.status).toBe(400);
    expect(res.json.error.param).toBe('origins');
  });

  it("warns of an origin the gateway's cors.origins leave out", async () => {
    const res = await relay.gateway.admin('POST', '/users', { id: 'warn-user', origins: [PAGE, 'https://unlisted.example'] });
    expect(res.status).toBe(201);
    expect(res.json.warnings).toEqual([
      "origins: https://unlisted.example is not in the gateway's cors.origins: pages there get no CORS headers, so browsers cannot read its answers.",
    ]);
  });
});

describe('the command line', () => {
  async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main(argv, {
      stdout: { write: (text: string) => (out += text) },
      stderr: { write: (text: string) => (err += text) },
      env: { KEYRELAY_URL: relay.gateway.url, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN },
    });
    return { code, out, err };
  }

  it('sets origins with --origins, replaces them, prints the warnings, and removes them with --any-origin', async () => {
    const created = await cli(['users', 'create', 'cli-page-user', '--origins', `${PAGE}, https://unlisted.example`]);
    expect(created.code).toBe(0);
    expect(created.out).toContain(`origins    ${PAGE}, https://unlisted.example\n`);
    expect(created.err).toContain('keyrelay: warning: origins: https://unlisted.example is not in the gateway');
    expect((await cli(['users', 'update', 'cli-page-user', '--origins', SECOND])).code).toBe(0);
    expect((await relay.gateway.admin('GET', '/users/cli-page-user')).json.origins).toEqual([SECOND]);
    expect((await cli(['users', 'update', 'cli-page-user', '--origins', PAGE, '--any-origin'])).code).not.toBe(0);
    const bad = await cli(['users', 'update', 'cli-page-user', '--origins', 'https://chat.example/app']);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain('`origins.0`');
    const cleared = await cli(['users', 'update', 'cli-page-user', '--any-origin']);
    expect(cleared.code).toBe(0);
    expect(cleared.out).not.toContain('origins ');
    expect((await relay.gateway.admin('GET', '/users/cli-page-user')).json.origins).toBeUndefined();
  });
});
