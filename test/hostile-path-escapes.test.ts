// A hostile user spells a path with escapes to slip past ownership, list filtering and metering:
// `/v1/files/%66ile-<bob's id>`, `/v1/%66iles`, `/v1/chat/%63ompletions`. The gateway brings every
// path to one canonical form before deciding anything (src/relay/path.ts) and matches it to its
// operation once (src/operations/match.ts), so an escaped path gets exactly the answer of the
// plain one, or a 400, and what goes upstream is what was decided on.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { loadRoutes } from './helpers/routes.js';
import { type TestGateway } from './helpers/gateway.js';
import { post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';

let fake: FakeUpstream;
let gateway: TestGateway;
let alice: string;
let bob: string;
let bobsFile: string;

async function send(method: string, target: string, key: string, body?: unknown) {
  const res = await request(`${gateway.url}${target}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, text, json: text.startsWith('{') ? JSON.parse(text) : undefined };
}

/** Every way to spell `char` in a path, plain aside: lower and upper hex, and double encoding. */
function spellings(char: string): string[] {
  const hex = char.charCodeAt(0).toString(16);
  return [`%${hex.toLowerCase()}`, `%${hex.toUpperCase()}`, `%25${hex}`, `%2525${hex}`];
}

beforeAll(async () => {
  fake = await startFake();
  gateway = await startQuotaGateway(fake);
  alice = await userWithKey(gateway, 'alice', { tokensPerDay: 2_000 });
  bob = await userWithKey(gateway, 'bob', {});
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob(['{"a":1}\n']), 'bob.jsonl');
  const made = await fetch(`${gateway.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${bob}` }, body: form });
  bobsFile = ((await made.json()) as { id: string }).id;
  expect(bobsFile).toMatch(/^file-/);
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

describe("another user's object, spelled with escapes", () => {
  const forms = (id: string): string[] => [
    ...spellings('f').map((e) => `/v1/files/${e}${id.slice(1)}`),
    ...spellings('i').map((e) => `/v1/f${e}les/${id}`),
    ...spellings('-').map((e) => `/v1/files/file${e}${id.slice(5)}`),
    `/v1/files/${id.replace(/./g, (c) => `%${c.charCodeAt(0).toString(16)}`)}`,
    `/v1/files/${id}/%63ontent`,
    `/v1/files%2F${id}`,
    `/v1/files%2f${id}`,
    `/v1/files/%2e%2e/files/${id}`,
    `/v1/files/.%2E/files/${id}`,
    `/v1/x/%2e%2e/files/${id}`,
    `/v1/files%5c${id}`,
  ];

  it('never reaches the upstream: 404 as for the plain path, or 400 for an escape no path needs', async () => {
    const plain = await send('GET', `/v1/files/${bobsFile}`, alice);
    expect(plain.status).toBe(404);
    expect(plain.json.error.code).toBe('not_found');
    fake.reset();
    for (const target of forms(bobsFile)) {
      for (const method of ['GET', 'DELETE']) {
        const answer = await send(method, target, alice);
        expect([400, 404], `${method} ${target}`).toContain(answer.status);
        expect(answer.json.error.code, `${method} ${target}`).toBe(answer.status === 400 ? 'invalid_path' : 'not_found');
      }
    }
    expect(fake.requests.map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });

  it('the owner reaches it under any decodable spelling, and the upstream sees the canonical path', async () => {
    fake.reset();
    const answer = await send('GET', `/v1/%66iles/%66ile-${bobsFile.slice(5)}`, bob);
    expect(answer.status).toBe(200);
    expect(fake.requests.map((r) => r.url)).toEqual([`/v1/files/${bobsFile}`]);
  });

  it('every route of the table with an object id in its path refuses the escaped id of an object not the caller’s', async () => {
    // Ids the gateway never saw created: 404 for everyone (pool.shareUnknownObjects is off).
    const sample: Record<string, string> = {
      file_id: 'file-ABC1', batch_id: 'batch_B1', vector_store_id: 'vs_V1', assistant_id: 'asst_A1', thread_id: 'thread_T1',
      response_id: 'resp_R1', fine_tuning_job_id: 'ftjob-J1', container_id: 'cntr_C1', video_id: 'video_V1',
      conversation_id: 'conv_C1', eval_id: 'eval_E1', completion_id: 'chatcmpl-C1', skill_id: 'skill_S1', consent_id: 'cons_C1',
      upload_id: 'upload_U1', character_id: 'char_C1',
    };
    const routes = loadRoutes().filter((r) => r.auth.startsWith('ApiKey') && !r.path.includes('?'));
    let tried = 0;
    fake.reset();
    for (const route of routes) {
      const names = [...route.path.matchAll(/\{([a-z_]+)\}/g)].map((m) => m[1] as string);
      const first = names.find((n) => sample[n] !== undefined);
      if (first === undefined) continue;
      // The first tracked id spelled with its first character escaped; other parameters plain.
      const fill = (escape: boolean) =>
        route.path.replace(/\{([a-z_]+)\}/g, (_m, name: string) => {
          const id = sample[name] ?? `${name}_x1`;
          return escape && name === first ? `%${id.charCodeAt(0).toString(16).toUpperCase()}${id.slice(1)}` : id;
        });
      // A run is charged its caps, which a key with a token limit must set (else 400 before any object is looked at).
      const caps = route.operationId === 'createRun' ? { max_prompt_tokens: 100, max_completion_tokens: 100 } : {};
      const body = route.requestTypes.includes('application/json') ? caps : undefined;
      const plain = await send(route.method, fill(false), alice, body);
      const escaped = await send(route.method, fill(true), alice, body);
      // 404 for the object; 403 where the operation is closed to alice's limits whatever it names.
      expect([403, 404], `${route.method} ${fill(false)}`).toContain(plain.status);
      expect({ status: escaped.status, code: escaped.json.error.code }, `${route.method} ${fill(true)}`).toEqual({
        status: plain.status,
        code: plain.json.error.code,
      });
      tried++;
    }
    expect(tried).toBeGreaterThan(90);
    expect(fake.requests.map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });
});

describe('a list spelled with escapes', () => {
  it('is filtered as the plain list is', async () => {
    fake.handle((req) =>
      req.method === 'GET' && req.path === '/v1/files'
        ? { body: { object: 'list', data: [{ id: bobsFile, object: 'file' }], first_id: bobsFile, last_id: bobsFile, has_more: false } }
        : undefined,
    );
    for (const target of ['/v1/files', '/v1/%66iles', '/v1/%46iles'.replace('%46', '%66'), '/v1/fil%65s?limit=10']) {
      const answer = await send('GET', target, alice);
      expect(answer.status, target).toBe(200);
      expect(answer.json.data, target).toEqual([]);
    }
    const own = await send('GET', '/v1/%66iles', bob);
    expect(own.json.data.map((f: { id: string }) => f.id)).toEqual([bobsFile]);
    fake.reset();
  });
});

describe('a metered route spelled with escapes', () => {
  it('is admitted and charged as the plain route is', async () => {
    const huge = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10_000_000 };
    for (const path of ['/chat/%63ompletions', '/%63hat/completions', '/chat/c%6Fmpletions']) {
      const refused = await post(gateway.url, alice, path, huge);
      expect(refused.status, path).toBe(429);
      expect(refused.json.error.code).toBe('insufficient_quota');
    }
    expect(fake.requests).toHaveLength(0);
    const small = await post(gateway.url, alice, '/chat/%63ompletions', { ...huge, max_tokens: 50 });
    expect(small.status).toBe(200);
    await until(async () => (await usageOf(gateway, 'alice')).day.tokens > 0, 'the charge');
    expect((await usageOf(gateway, 'alice')).day.tokens).toBe(small.json.usage.total_tokens);
    expect(fake.requests.map((r) => r.url)).toEqual(['/v1/chat/completions']);
  });

  it('logs the canonical route and its operation', async () => {
    const line = gateway.logs.filter((l) => l.msg === 'request' && l.userId === 'alice' && l.status === 200).at(-1);
    expect(line).toMatchObject({ route: '/v1/chat/completions', operation: 'createChatCompletion' });
  });
});
