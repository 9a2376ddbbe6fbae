// The pieces that write a request for an Azure upstream: the JSON body's `model` replaced and no
// other byte, a form's `model` field renamed as it streams (whatever the chunking), and the classic
// API's path and query decided from the operation the request matched.
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { matchOperation } from '../src/operations/match.js';
import { Pool } from '../src/pool/pool.js';
import { FormModelRename } from '../src/relay/form-model.js';
import type { RequestBody } from '../src/relay/body.js';
import { withModel } from '../src/relay/model-sent.js';
import { upstreamTarget } from '../src/relay/upstream-target.js';

const rename = (m: string) => (m === 'gpt-4o' ? 'prod-gpt4o' : m);

/** A JSON body as body.ts hands it on, with the deployment of its model put in (model-sent.ts). */
function replaced(text: string, deployment: (model: string) => string): Buffer {
  const json = JSON.parse(text) as Record<string, unknown>;
  // Only the model's fact: the other members of a random object need not be ones body.ts accepts.
  const facts = typeof json.model === 'string' ? { model: json.model } : {};
  const body: RequestBody = { kind: 'buffered', bytes: Buffer.from(text), json, facts };
  const model = body.facts.model;
  if (model === undefined || deployment(model) === model) return body.bytes;
  const sent = withModel(body, deployment(model));
  if (sent.kind !== 'buffered') throw new Error('a buffered body stays buffered');
  expect(sent.facts.model).toBe(deployment(model));
  return sent.bytes;
}

describe('the model of a JSON body replaced for a deployment', () => {
  it.each([
    ['{"model":"gpt-4o","messages":[]}', '{"model":"prod-gpt4o","messages":[]}'],
    // Only the top-level model: a nested one and one inside a string stay.
    [
      ' {"metadata":{"model":"gpt-4o"},"messages":[{"role":"user","content":"\\"model\\":\\"gpt-4o\\""}],\n "model" : "gpt-4o" ,"n":1}',
      ' {"metadata":{"model":"gpt-4o"},"messages":[{"role":"user","content":"\\"model\\":\\"gpt-4o\\""}],\n "model" : "prod-gpt4o" ,"n":1}',
    ],
    // A key written with escapes is the model for the upstream too.
    ['{"mod\\u0065l":"gpt-4o"}', '{"mod\\u0065l":"prod-gpt4o"}'],
    ['{"a":[1,{"b":[true,null]}],"x":-1.5e3,"model":"gpt-4o"}', '{"a":[1,{"b":[true,null]}],"x":-1.5e3,"model":"prod-gpt4o"}'],
  ])('%s', (body, expected) => {
    expect(replaced(body, rename).toString()).toBe(expected);
  });

  it('leaves a body without a mapped model as the very same bytes', () => {
    for (const body of ['{"model":"gpt-4.1"}', '{"input":"x"}']) expect(replaced(body, rename).toString()).toBe(body);
  });

  it('replaces the model JSON.parse finds, in any object of any shape, and nothing else', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.string({ minLength: 1 }), fc.boolean(), (rest, model, pretty) => {
        const object = { ...rest, model };
        const text = JSON.stringify(object, null, pretty ? 2 : undefined);
        expect(JSON.parse(replaced(text, () => 'dep').toString())).toEqual({ ...object, model: 'dep' });
      }),
      { numRuns: 300, seed: 20261207 },
    );
  });
});

function form(boundary: string, parts: Array<[string, string, string?]>): string {
  return (
    parts.map(([name, value, filename]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"\r\nContent-Type: audio/wav` : ''}\r\n\r\n${value}\r\n`).join('') +
    `--${boundary}--\r\n`
  );
}

async function renamed(body: string, boundary: string, cuts: number[]): Promise<string> {
  const bytes = Buffer.from(body, 'latin1');
  const pieces: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    pieces.push(bytes.subarray(at, cut));
    at = cut;
  }
  pieces.push(bytes.subarray(at));
  const out = Readable.from(pieces).pipe(new FormModelRename(boundary, rename));
  return Buffer.from(await text(out), 'utf8').toString('utf8');
}

describe('FormModelRename', () => {
  const boundary = '----form7MA4YWxk';
  const audio = 'RIFF\u0000\u0001--not-a-boundary\r\nname="model"\r\n\r\ngpt-4o';

  it('renames the model field before or after the file, and nothing else, however the form is cut', async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(fc.nat(), { maxLength: 6 }), async (modelFirst, cuts) => {
        const file: [string, string, string] = ['file', audio, 'a.wav'];
        const model: [string, string] = ['model', 'gpt-4o'];
        const parts = modelFirst ? [model, file, ['language', 'en'] as [string, string]] : [file, ['language', 'en'] as [string, string], model];
        const body = form(boundary, parts);
        const expected = form(boundary, parts.map((p) => (p[0] === 'model' ? ['model', 'prod-gpt4o'] : p)) as Array<[string, string, string?]>);
        const length = Buffer.byteLength(body, 'latin1');
        expect(await renamed(body, boundary, cuts.map((c) => c % (length + 1)))).toBe(expected);
      }),
      { numRuns: 200 },
    );
  });

  it('passes a form without a model field unchanged', async () => {
    const body = form(boundary, [['purpose', 'batch'], ['file', '{"a":1}', 'a.jsonl']]);
    expect(await renamed(body, boundary, [5, 50, 90])).toBe(body);
  });
});

describe('upstreamTarget, classic API', () => {
  const pool = new Pool({
    upstreams: [
      { id: 'az', kind: 'azure', baseUrl: 'https://res.openai.azure.com/openai', apiVersion: '2024-10-21', deployments: { 'gpt-4o': 'prod' }, keys: [] },
      { id: 'v1', kind: 'azure', baseUrl: 'https://res.openai.azure.com/openai/v1', deployments: { 'gpt-4o': 'prod' }, keys: [] },
    ],
  });
  const [classic, v1] = pool.upstreams as [NonNullable<(typeof pool.upstreams)[0]>, NonNullable<(typeof pool.upstreams)[0]>];
  const target = (method: string, path: string, search: string, model?: string, upstream = classic) => {
    const decided = upstreamTarget(upstream, matchOperation(method, path), path.slice(3) + search, model);
    return decided.ok ? decided.path : `${decided.error.status} ${decided.error.code}`;
  };

  it.each([
    ['POST', '/v1/chat/completions', '', 'gpt-4o', '/openai/deployments/prod/chat/completions?api-version=2024-10-21'],
    ['POST', '/v1/completions', '', 'gpt-4o', '/openai/deployments/prod/completions?api-version=2024-10-21'],
    ['POST', '/v1/embeddings', '', 'text-embedding-3-small', '/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21'],
    ['POST', '/v1/images/generations', '', 'gpt-4o', '/openai/deployments/prod/images/generations?api-version=2024-10-21'],
    ['POST', '/v1/images/edits', '', 'gpt-4o', '/openai/deployments/prod/images/edits?api-version=2024-10-21'],
    ['POST', '/v1/images/variations', '', 'gpt-4o', '/openai/deployments/prod/images/variations?api-version=2024-10-21'],
    ['POST', '/v1/audio/transcriptions', '', 'gpt-4o', '/openai/deployments/prod/audio/transcriptions?api-version=2024-10-21'],
    ['POST', '/v1/audio/translations', '', 'gpt-4o', '/openai/deployments/prod/audio/translations?api-version=2024-10-21'],
    ['POST', '/v1/audio/speech', '', 'gpt-4o', '/openai/deployments/prod/audio/speech?api-version=2024-10-21'],
    ['POST', '/v1/files', '', undefined, '/openai/files?api-version=2024-10-21'],
    ['GET', '/v1/files/file-abc/content', '?x=1', undefined, '/openai/files/file-abc/content?x=1&api-version=2024-10-21'],
    ['POST', '/v1/batches/batch_1/cancel', '', undefined, '/openai/batches/batch_1/cancel?api-version=2024-10-21'],
    ['GET', '/v1/fine_tuning/jobs/ftjob-1/events', '?limit=2&api-version=old', undefined, '/openai/fine_tuning/jobs/ftjob-1/events?limit=2&api-version=2024-10-21'],
    ['GET', '/v1/models', '', undefined, '/openai/models?api-version=2024-10-21'],
    ['POST', '/v1/responses', '', 'gpt-4o', '404 route_not_supported'],
    ['GET', '/v1/vector_stores', '', undefined, '404 route_not_supported'],
    ['POST', '/v1/not/an/operation', '', 'gpt-4o', '404 route_not_supported'],
    ['POST', '/v1/chat/completions', '', undefined, '400 invalid_request'],
    ['POST', '/v1/chat/completions', '', '..', '400 invalid_request'],
  ])('%s %s%s (model %s) -> %s', (method, path, search, model, expected) => {
    expect(target(method, path, search, model)).toBe(expected);
  });

  it('the v1 API keeps OpenAI\'s paths and queries', () => {
    expect(target('POST', '/v1/responses', '?x=1', 'gpt-4o', v1)).toBe('/openai/v1/responses?x=1');
    expect(target('GET', '/v1/vector_stores', '', undefined, v1)).toBe('/openai/v1/vector_stores');
  });

  it('routes only the deployments\' models to an Azure upstream without `models`', () => {
    expect(pool.upstreamFor('gpt-4o')?.id).toBe('az');
    expect(pool.upstreamFor('gpt-4.1')).toBeUndefined();
  });
});
