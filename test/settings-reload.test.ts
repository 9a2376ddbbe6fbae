// SIGHUP: `keyrelay serve` reads its settings file again and applies its upstreams and pool keys
// without a restart; a key the file no longer lists serves what runs on it to the end. A file that
// does not load is refused with a log line naming the setting, and the running settings stay.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FakeUpstream, type RecordedRequest, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';
import { adminAt, chat, runtimeSecret } from './helpers/runtime-fixture.js';

const K1 = runtimeSecret('hup-one');
const K2 = runtimeSecret('hup-two');

let fake: FakeUpstream;
let gateway: ChildGateway;
let file: string;
let userKey: string;

const settings = (keys: Array<[string, string]>) =>
  `upstreams:\n  - id: main\n    baseUrl: ${fake.baseUrl}\n    keys:\n${keys.map(([id, key]) => `      - { id: ${id}, key: ${key} }\n`).join('')}`;
const keyIds = async () => (await adminAt(gateway.url)('GET', '/upstreams/main/keys')).json.data.map((k: { id: string }) => k.id).join();
const auth = (r: RecordedRequest) => String(r.headers.authorization).slice('Bearer '.length);

beforeAll(async () => {
  fake = await startFakeUpstream();
  file = join(mkdtempSync(join(tmpdir(), 'keyrelay-hup-')), 'keyrelay.yaml');
  writeFileSync(file, settings([['k1', K1]]));
  gateway = await startChildGateway({ KEYRELAY_CONFIG: file }, { entry: 'serve' });
  const admin = adminAt(gateway.url);
  expect((await admin('POST', '/users', { id: 'hup', limits: { tokensPerDay: 1_000_000 } })).status).toBe(201);
  userKey = (await admin('POST', '/users/hup/keys', {})).json.key;
  registerSecret(userKey);
}, 60_000);
afterAll(async () => {
  await gateway?.stop();
  await fake?.close();
});

it('applies a good file: a key added serves, a key dropped finishes what runs on it', async () => {
  fake.handle(() => ({ headers: { 'content-type': 'text/event-stream' }, chunks: ['data: {"choices":[]}\n\n', 'data: [DONE]\n\n'], chunkIntervalMs: 1500 }));
  const running = chat(gateway.url, userKey, 'gpt-4o-mini', true);
  await until(() => fake.requests.length === 1, 'the stream to reach the upstream');
  writeFileSync(file, settings([['k2', K2]]));
  gateway.child.kill('SIGHUP');
  await until(async () => (await keyIds()) === 'k2', 'the reloaded settings to apply', 5000);
  await until(() => gateway.logs.some((l) => l.msg === 'settings reloaded: upstreams and pool keys applied; other settings take a restart'), 'the reload line', 5000);
  fake.reset();
  for (let i = 0; i < 3; i++) expect((await chat(gateway.url, userKey)).status).toBe(200);
  expect(fake.requests.map(auth)).toEqual([K2, K2, K2]);
  const stream = await running;
  expect(stream.status).toBe(200);
  expect(stream.text).toContain('data: [DONE]');
});

it('refuses a bad file, naming the setting, and keeps the running settings', async () => {
  writeFileSync(file, settings([['k2', K2]]).replace(fake.baseUrl, 'ftp://example.com/v1'));
  gateway.child.kill('SIGHUP');
  await until(() => gateway.logs.some((l) => l.msg === 'settings reload refused: the running settings stay'), 'the refusal line', 5000);
  const line = gateway.logs.find((l) => l.msg === 'settings reload refused: the running settings stay');
  expect(String(line?.reason)).toMatch(/^setting upstreams\/0\/baseUrl: /);
  expect(await keyIds()).toBe('k2');
  writeFileSync(file, 'upstreams: [');
  gateway.child.kill('SIGHUP');
  await until(() => gateway.logs.filter((l) => l.msg === 'settings reload refused: the running settings stay').length === 2, 'the second refusal', 5000);
  fake.reset();
  expect((await chat(gateway.url, userKey)).status).toBe(200);
  expect(fake.requests.map(auth)).toEqual([K2]);
  expect(gateway.child.exitCode).toBe(null);
});
