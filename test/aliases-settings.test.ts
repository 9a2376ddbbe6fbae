// Alias tables that cannot be used are refused: at start with a message naming the setting, through
// the upstreams API with a 400 naming `aliases` and nothing changed. Tables set through the API
// route requests as the settings' do.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { SECRET_A, chat, runtimeSecret } from './helpers/runtime-fixture.js';

function fileWith(yaml: string): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'keyrelay-aliases-'));
  const path = join(dir, 'keyrelay.yaml');
  writeFileSync(path, yaml);
  return { KEYRELAY_CONFIG: path };
}

const UPSTREAM = 'upstreams:\n  - id: main\n    baseUrl: https://api.openai.com/v1\n';

describe('settings', () => {
  it.each([
    ['a cycle', 'aliases: { a: b, b: c, c: a }\n', /^setting aliases: the aliases "a" -> "b" -> "c" -> "a" form a cycle$/],
    ['an alias equal to its target', 'aliases: { gpt-4o: gpt-4o }\n', /^setting aliases: the alias "gpt-4o" names itself$/],
    ['an empty name', 'aliases: { "": gpt-4o }\n', /^setting aliases: an alias name must not be empty/],
    ['an empty target', 'aliases: { fast: "" }\n', /^setting aliases: the alias "fast" must map to a model name/],
    ['a target that is no string', 'aliases: { fast: [gpt-4o] }\n', /^setting aliases\/fast: /],
  ])('refuses %s at the top level', (_what, yaml, message) => {
    const env = fileWith(UPSTREAM + yaml);
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it("refuses an upstream's table that makes a cycle with the top-level one, naming the upstream's setting", () => {
    const env = fileWith(`aliases: { fast: gpt-4o }\n${UPSTREAM}    aliases: { gpt-4o: fast }\n`);
    expect(() => loadConfig(env)).toThrow(/^setting upstreams\/0\/aliases: the aliases "gpt-4o" -> "fast" -> "gpt-4o" form a cycle$/);
  });

  it('accepts a chain and an upstream that redefines a top-level alias', () => {
    const config = loadConfig(fileWith(`aliases: { fast: quick, quick: gpt-4o-mini }\n${UPSTREAM}    aliases: { fast: gpt-4.1 }\nmodels: { list: upstream }\n`));
    expect(config.aliases).toEqual({ fast: 'quick', quick: 'gpt-4o-mini' });
    expect(config.upstreams[0]?.aliases).toEqual({ fast: 'gpt-4.1' });
    expect(config.models.list).toBe('upstream');
  });

  it('refuses an unknown models.list', () => {
    expect(() => loadConfig(fileWith(`${UPSTREAM}models: { list: both }\n`))).toThrow(/^setting models\/list: /);
  });
});

describe('the upstreams API', () => {
  let fake: FakeUpstream;
  let gateway: TestGateway;
  let userKey: string;

  beforeAll(async () => {
    fake = await startFakeUpstream();
    // The settings' upstream serves only gpt-*: a run-time upstream gets what else it serves.
    gateway = await startGateway({
      env: { KEYRELAY_SECRET: SECRET_A },
      config: { aliases: { fast: 'gpt-4o-mini' }, upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['gpt-*'], strategy: 'round-robin', keys: [] }] },
    });
    userKey = await gateway.createUserKey('api-user');
    registerSecret(userKey);
  });
  afterAll(async () => {
    await gateway?.close();
    await fake?.close();
  });

  it.each([
    ['an empty name', { '': 'gpt-4o' }, /must not be empty/],
    ['an alias equal to its target', { 'x-1': 'x-1' }, /"x-1" names itself/],
    ['a cycle', { 'x-1': 'x-2', 'x-2': 'x-1' }, /form a cycle/],
    ['a cycle through the top-level table', { 'gpt-4o-mini': 'fast' }, /"gpt-4o-mini" -> "fast" -> "gpt-4o-mini" form a cycle/],
    ['a target that is no string', { 'x-1': 5 }, /aliases/],
  ])('answers 400 for %s and adds nothing', async (_what, aliases, message) => {
    const answer = await gateway.admin('POST', '/upstreams', { id: 'bad-aliases', baseUrl: fake.baseUrl, aliases });
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({ type: 'invalid_request_error', param: expect.stringMatching(/^aliases/) });
    expect(answer.json.error.message).toMatch(message);
    expect((await gateway.admin('GET', '/upstreams/bad-aliases')).status).toBe(404);
  });

  it('sets, shows, changes and removes an upstream\'s aliases; requests follow', async () => {
    const created = await gateway.admin('POST', '/upstreams', { id: 'rt', baseUrl: fake.baseUrl, models: ['rt-*'], aliases: { house: 'rt-model-1' } });
    expect(created.status).toBe(201);
    expect(created.json.aliases).toEqual({ house: 'rt-model-1' });
    expect((await gateway.admin('POST', '/upstreams/rt/keys', { key: runtimeSecret('alias-rt') })).status).toBe(201);

    expect((await chat(gateway.url, userKey, 'house')).status).toBe(200);
    expect((fake.requests.at(-1)?.json as { model: string }).model).toBe('rt-model-1');

    const bad = await gateway.admin('PATCH', '/upstreams/rt', { aliases: { house: 'house' } });
    expect(bad.status).toBe(400);
    expect((await gateway.admin('GET', '/upstreams/rt')).json.aliases).toEqual({ house: 'rt-model-1' });

    const changed = await gateway.admin('PATCH', '/upstreams/rt', { aliases: { house: 'rt-model-2' } });
    expect(changed.json.aliases).toEqual({ house: 'rt-model-2' });
    expect((await chat(gateway.url, userKey, 'house')).status).toBe(200);
    expect((fake.requests.at(-1)?.json as { model: string }).model).toBe('rt-model-2');

    expect((await gateway.admin('PATCH', '/upstreams/rt', { aliases: null })).json.aliases).toEqual({});
    // No upstream serves `house` any more.
    const before = fake.requests.length;
    expect((await chat(gateway.url, userKey, 'house')).status).toBe(503);
    expect(fake.requests.length).toBe(before);
  });
});
