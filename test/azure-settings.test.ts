// Azure upstreams in the settings file and through the admin API: what is taken, what is refused
// (naming the setting at start, a 400 naming the field at run time, nothing changed), and an Azure
// upstream added at run time serving requests.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { serveAzure } from '../src/dev/fake-azure.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { SECRET_A, chat } from './helpers/runtime-fixture.js';

function settingsFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'keyrelay-azure-'));
  const path = join(dir, 'keyrelay.yaml');
  writeFileSync(path, text);
  return path;
}

const load = (yaml: string) => loadConfig({ KEYRELAY_CONFIG: settingsFile(yaml), AZURE_KEY: 'az-settings-key-0123456789' });

describe('settings', () => {
  it('takes both forms, the key from the environment; models default to the deployments\' models', () => {
    const config = load(`
upstreams:
  - id: azure-v1
    kind: azure
    baseUrl: https://myres.openai.azure.com/openai/v1
    deployments: { gpt-4o: prod-gpt4o }
    keys: [{ id: az-1, key: env:AZURE_KEY }]
  - id: azure-classic
    kind: azure
    baseUrl: https://myres.openai.azure.com/openai
    apiVersion: 2024-10-21
    deployments: { gpt-4o-mini: mini }
    models: ['gpt-4o-mini*']
  - id: openai
    baseUrl: https://api.openai.com/v1
`);
    expect(config.upstreams.map((u) => [u.id, u.kind ?? 'openai', u.models, u.deployments, u.apiVersion])).toEqual([
      ['azure-v1', 'azure', ['gpt-4o'], { 'gpt-4o': 'prod-gpt4o' }], // models from deployments
      ['azure-classic', 'azure', ['gpt-4o-mini*'], { 'gpt-4o-mini': 'mini' }, '2024-10-21'],
      ['openai', 'openai', ['*'], undefined, undefined],
    ].map((row) => (row.length === 4 ? [...row, undefined] : row)));
    expect(config.upstreams[0]?.keys[0]?.key).toBe('az-settings-key-0123456789');
  });

  it.each([
    [
      'a classic Azure upstream without apiVersion',
      'kind: azure\n    baseUrl: https://myres.openai.azure.com/openai\n    deployments: { gpt-4o: prod }',
      /^setting upstreams\/0\/apiVersion: an azure upstream whose baseUrl is not the v1 API/,
    ],
    ['deployments as a list', 'kind: azure\n    baseUrl: https://myres.openai.azure.com/openai/v1\n    deployments: [gpt-4o]', /^setting upstreams\/0\/deployments: /],
    ['a deployment that is not a string', 'kind: azure\n    baseUrl: https://myres.openai.azure.com/openai/v1\n    deployments: { gpt-4o: { name: prod } }', /^setting upstreams\/0\/deployments\/gpt-4o: /],
    ['a deployment name with a slash', 'kind: azure\n    baseUrl: https://myres.openai.azure.com/openai/v1\n    deployments: { gpt-4o: "../prod" }', /^setting upstreams\/0\/deployments\/gpt-4o: /],
    ['deployments on an openai upstream', 'baseUrl: https://api.openai.com/v1\n    deployments: { gpt-4o: prod }', /^setting upstreams\/0\/deployments: only an upstream of kind "azure"/],
    ['an apiVersion on an openai upstream', 'baseUrl: https://api.openai.com/v1\n    apiVersion: 2024-10-21', /^setting upstreams\/0\/apiVersion: only an upstream of kind "azure"/],
    ['an unknown kind', 'kind: anthropic\n    baseUrl: https://api.example.com/v1', /^setting upstreams\/0\/kind: /],
  ])('refuses %s, naming the setting', (_what, fields, message) => {
    expect(() => load(`upstreams:\n  - id: bad\n    ${fields}\n`)).toThrow(ConfigError);
    expect(() => load(`upstreams:\n  - id: bad\n    ${fields}\n`)).toThrow(message);
  });

  it('stops `keyrelay serve` before it listens, naming the setting', async () => {
    const path = settingsFile('upstreams:\n  - id: az\n    kind: azure\n    baseUrl: https://myres.openai.azure.com/openai\n');
    const register = fileURLToPath(new URL('./helpers/ts-register.mjs', import.meta.url));
    const entry = fileURLToPath(new URL('./helpers/serve-process.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', register, entry], {
      cwd: tmpdir(),
      env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', KEYRELAY_CONFIG: path },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(output).toContain('setting upstreams/0/apiVersion');
    expect(output).not.toContain('listening');
  }, 120_000); // a child that compiles the whole program: slow on a busy machine, and it ends on its own
});

describe('the admin API', () => {
  const AZ_KEY = 'az-runtime-key-0123456789abcdef';
  registerPoolKey(AZ_KEY);
  let fake: FakeUpstream;
  let gateway: TestGateway;
  let userKey: string;
  beforeAll(async () => {
    fake = await startFakeUpstream();
    serveAzure(fake, { form: 'classic', apiVersion: '2024-10-21', keys: [AZ_KEY], deployments: { mini: 'gpt-4o-mini' } });
    gateway = await startGateway({ env: { KEYRELAY_SECRET: SECRET_A }, config: { upstreams: [] } });
    userKey = await gateway.createUserKey('az-user');
    registerSecret(userKey);
  });
  afterAll(async () => {
    await gateway.close();
    await fake.close();
  });

  it.each([
    ['a classic upstream without apiVersion', { kind: 'azure', baseUrl: 'https://myres.openai.azure.com/openai', deployments: { 'gpt-4o': 'prod' } }, 'apiVersion', /apiVersion.*classic API/],
    ['deployments that are not a map of strings', { kind: 'azure', baseUrl: 'https://myres.openai.azure.com/openai/v1', deployments: { 'gpt-4o': 5 } }, 'deployments.gpt-4o', /map of model names to Azure deployment names/],
    ['deployments as a list', { kind: 'azure', baseUrl: 'https://myres.openai.azure.com/openai/v1', deployments: ['gpt-4o'] }, 'deployments', /map of model names/],
    ['a deployment name that is not a name', { kind: 'azure', baseUrl: 'https://myres.openai.azure.com/openai/v1', deployments: { 'gpt-4o': 'a/b' } }, 'deployments.gpt-4o', /deployment names/],
    ['deployments on an openai upstream', { baseUrl: 'https://api.openai.com/v1', deployments: { 'gpt-4o': 'prod' } }, 'deployments', /only an upstream of kind "azure"/],
    ['an unknown kind', { kind: 'bedrock', baseUrl: 'https://api.openai.com/v1' }, 'kind', /"openai".*"azure"/],
  ])('refuses %s with 400 naming the field, and adds nothing', async (_what, fields, param, message) => {
    const answer = await gateway.admin('POST', '/upstreams', { id: 'bad', ...fields });
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request', param });
    expect(answer.json.error.message).toMatch(message);
    expect((await gateway.admin('GET', '/upstreams/bad')).status).toBe(404);
  });

  it('adds a classic Azure upstream that serves its deployments; a PATCH that would break it is refused and changes nothing', async () => {
    const created = await gateway.admin('POST', '/upstreams', { id: 'az', kind: 'azure', baseUrl: `${fake.url}/openai`, apiVersion: '2024-10-21', deployments: { 'gpt-4o-mini': 'mini' } });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ id: 'az', source: 'store', kind: 'azure', form: 'classic', apiVersion: '2024-10-21', deployments: { 'gpt-4o-mini': 'mini' }, models: ['gpt-4o-mini'] });
    expect((await gateway.admin('POST', '/upstreams/az/keys', { id: 'k1', key: AZ_KEY })).status).toBe(201);
    expect((await chat(gateway.url, userKey, 'gpt-4o-mini')).status).toBe(200);
    expect(fake.requests.map((r) => r.url)).toEqual(['/openai/deployments/mini/chat/completions?api-version=2024-10-21']);
    expect(fake.requests[0]?.headers['api-key']).toBe(AZ_KEY);

    const refused = await gateway.admin('PATCH', '/upstreams/az', { apiVersion: null });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ code: 'invalid_request', param: 'apiVersion' });
    expect((await gateway.admin('GET', '/upstreams/az')).json).toMatchObject({ apiVersion: '2024-10-21' });

    const changed = await gateway.admin('PATCH', '/upstreams/az', { deployments: { 'gpt-4o-mini': 'mini', 'gpt-4o': 'big' } });
    expect(changed.status).toBe(200);
    expect(changed.json).toMatchObject({ deployments: { 'gpt-4o-mini': 'mini', 'gpt-4o': 'big' }, models: ['gpt-4o-mini', 'gpt-4o'] });
  });

  it('`keyrelay upstreams add --kind azure` takes deployments and an api-version', async () => {
    let stdout = '';
    let stderr = '';
    const code = await main(
      ['upstreams', 'add', 'az-cli', '--kind', 'azure', '--base-url', `${fake.url}/openai`, '--api-version', '2024-10-21', '--deployments', 'gpt-4o=big,o3=reason'],
      { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, env: { KEYRELAY_URL: gateway.url, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN }, stdin: Readable.from([]) },
    );
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(/kind\s+azure/);
    expect(stdout).toMatch(/deployments\s+gpt-4o=big, o3=reason/);
    expect((await gateway.admin('GET', '/upstreams/az-cli')).json).toMatchObject({ kind: 'azure', apiVersion: '2024-10-21', deployments: { 'gpt-4o': 'big', o3: 'reason' } });
  });
});
