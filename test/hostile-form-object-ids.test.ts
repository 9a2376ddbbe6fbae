// A form can name an object in a text field, not only in its path: a container file copied from a
// file id (`file_id`), a voice made with a consent (`consent`), a video made from another video
// (`video`, `input_reference`). A user who puts another user's id there must get the 404 a JSON
// body gets, and the field may not hide after a file, where the gateway could not read it before
// choosing where the form goes.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-form-object-ids-000000000001';

let fake: FakeUpstream;
let gateway: TestGateway;
let alice: string;
let bob: string;
let bobsFile: string;
let alicesFile: string;
let alicesContainer: string;
let seq = 0;

async function upload(key: string, name: string): Promise<string> {
  const form = new FormData();
  form.append('purpose', 'user_data');
  form.append('file', new Blob(['hello']), name);
  const res = await fetch(`${gateway.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
  expect(res.status).toBe(200);
  return ((await res.json()) as { id: string }).id;
}

async function containerFile(key: string, form: FormData): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gateway.url}/v1/containers/${alicesContainer}/files`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
  return { status: res.status, body: await res.json() };
}

beforeAll(async () => {
  registerPoolKey(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  alice = await gateway.createUserKey('alice');
  bob = await gateway.createUserKey('bob');
  registerSecret(alice);
  registerSecret(bob);
  fake.handle((req) => {
    if (req.method === 'POST' && req.path === '/v1/files') return { body: { id: `file-form${++seq}`, object: 'file', purpose: 'user_data' } };
    if (req.method === 'POST' && req.path === '/v1/containers') return { body: { id: `cntr_form${++seq}`, object: 'container' } };
    if (req.method === 'POST' && /^\/v1\/containers\/[^/]+\/files$/.test(req.path)) return { body: { id: `cfile_form${++seq}`, object: 'container.file' } };
    return undefined;
  });
  bobsFile = await upload(bob, 'bob.txt');
  alicesFile = await upload(alice, 'alice.txt');
  const made = await fetch(`${gateway.url}/v1/containers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'alice' }),
  });
  expect(made.status).toBe(200);
  alicesContainer = ((await made.json()) as { id: string }).id;
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

const copies = () => fake.requests.filter((r) => r.path.startsWith(`/v1/containers/${alicesContainer}/files`));

it("answers 404 to a container file copied from another user's file, and relays nothing", async () => {
  const before = copies().length;
  const form = new FormData();
  form.append('file_id', bobsFile);
  const answer = await containerFile(alice, form);
  expect(answer.status).toBe(404);
  expect(answer.body.error).toMatchObject({ code: 'not_found', message: `No such object: ${bobsFile}` });
  expect(copies().length).toBe(before);
});

it('relays a container file copied from the caller’s own file', async () => {
  const form = new FormData();
  form.append('file_id', alicesFile);
  const answer = await containerFile(alice, form);
  expect(answer.status).toBe(200);
  expect(copies().at(-1)?.body.toString('utf8')).toContain(alicesFile);
});

it('refuses the id field after a file, before the upstream gets a whole form', async () => {
  const form = new FormData();
  form.append('file', new Blob(['x'.repeat(1024)]), 'cover.txt');
  form.append('file_id', bobsFile);
  const before = copies().length;
  // The refusal reaches the client as the 400, never as a cut connection.
  const answer = await containerFile(alice, form);
  expect(answer.status).toBe(400);
  expect(answer.body.error).toMatchObject({ code: 'invalid_multipart', param: 'file_id' });
  // A recorded body stays empty until it is whole: the upstream never had a whole form naming bob's file.
  const sent = copies().slice(before);
  await Promise.all(sent.map((r) => r.closed));
  for (const request of sent) expect(request.body.toString('latin1')).not.toContain(bobsFile);
});

it('refuses the id field given twice', async () => {
  const form = new FormData();
  form.append('file_id', alicesFile);
  form.append('file_id', bobsFile);
  const answer = await containerFile(alice, form);
  expect(answer.status).toBe(400);
  expect(answer.body.error).toMatchObject({ code: 'invalid_multipart', param: 'file_id' });
});

it("answers 404 to a voice made with another user's consent", async () => {
  fake.handle((req) => (req.method === 'POST' && req.path === '/v1/audio/voice_consents' ? { body: { id: `cons_form${++seq}`, object: 'audio.voice_consent' } } : undefined));
  const consentForm = new FormData();
  consentForm.append('name', 'Bob');
  consentForm.append('language', 'en');
  consentForm.append('recording', new Blob(['RIFF']), 'consent.wav');
  const consent = await fetch(`${gateway.url}/v1/audio/voice_consents`, { method: 'POST', headers: { authorization: `Bearer ${bob}` }, body: consentForm });
  expect(consent.status).toBe(200);
  const bobsConsent = ((await consent.json()) as { id: string }).id;
  const before = fake.requests.filter((r) => r.path === '/v1/audio/voices').length;
  const voice = new FormData();
  voice.append('name', 'stolen');
  voice.append('consent', bobsConsent);
  voice.append('audio_sample', new Blob(['RIFF']), 'sample.wav');
  const res = await fetch(`${gateway.url}/v1/audio/voices`, { method: 'POST', headers: { authorization: `Bearer ${alice}` }, body: voice });
  expect(res.status).toBe(404);
  expect(fake.requests.filter((r) => r.path === '/v1/audio/voices').length).toBe(before);
});
