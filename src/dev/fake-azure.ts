// The fake upstream as Azure OpenAI (docs/azure.md), for the tests: a handler on a FakeUpstream
// (fake-upstream.ts) that takes every request as an Azure resource would, checks what Azure
// checks, and answers in Azure's shapes from the fake's own OpenAI answers:
//   - the key in `api-key` (one of `keys`), never an Authorization header;
//   - v1 API (`/openai/v1/...`): the body's `model` (JSON or form) must name a deployment;
//   - classic API (`/openai/deployments/<deployment>/...`, `/openai/files` …): `api-version` must be
//     the one given, the deployment one of `deployments`;
//   - chat and completions answers carry content filter results; their streams open with an empty
//     chunk of `prompt_filter_results` and send a chunk with empty `choices` before the usage;
//   - errors as Azure words them (`{"error": {"code": "401", "message": ...}}`).
import type { FakeResponse, FakeUpstream, RecordedRequest } from './fake-upstream.js';
import { SSE_HEADERS, defaultAnswer, fakeId } from './fake-openai-answers.js';
import { formFields } from './fake-media-answers.js';
import { isObject } from '../json-object.js';

export interface FakeAzureOptions {
  form: 'v1' | 'classic';
  /** The api-version the classic API takes. */
  apiVersion?: string;
  /** The resource keys it accepts in `api-key`. */
  keys: readonly string[];
  /** Deployment name -> the model it runs. */
  deployments: Readonly<Record<string, string>>;
}

const FILTER_SAFE = {
  hate: { filtered: false, severity: 'safe' },
  self_harm: { filtered: false, severity: 'safe' },
  sexual: { filtered: false, severity: 'safe' },
  violence: { filtered: false, severity: 'safe' },
};
export const PROMPT_FILTER_RESULTS = [{ prompt_index: 0, content_filter_results: FILTER_SAFE }];

const CLASSIC_RESOURCES = /^\/openai\/(files|batches|fine_tuning|models)(\/.*)?$/;

type Json = Record<string, unknown>;

/** Azure's error body: its code is often the status as a string. */
export function azureError(status: number, code: string, message: string): FakeResponse {
  return { status, headers: { 'apim-request-id': fakeId('apim-') }, body: { error: { code, message } } };
}

/** Makes `fake` answer as an Azure OpenAI resource. Handlers added later still come first. */
export function serveAzure(fake: FakeUpstream, options: FakeAzureOptions): void {
  fake.handle((req) => answerAzure(fake, options, req));
}

function answerAzure(fake: FakeUpstream, options: FakeAzureOptions, req: RecordedRequest): FakeResponse {
  if (req.headers.authorization !== undefined) {
    return azureError(400, 'UnexpectedAuthorization', 'The fake Azure resource was sent an Authorization header beside (or instead of) api-key.');
  }
  const key = req.headers['api-key'];
  if (typeof key !== 'string' || !options.keys.includes(key)) {
    return azureError(
      401,
      '401',
      'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.',
    );
  }
  const query = new URLSearchParams(req.query);
  let path: string;
  let model: string | undefined;
  if (options.form === 'classic') {
    if (query.get('api-version') !== options.apiVersion) return azureError(404, '404', 'Resource not found');
    const deployment = /^\/openai\/deployments\/([^/]+)(\/.+)$/.exec(req.path);
    const resource = CLASSIC_RESOURCES.exec(req.path);
    if (deployment) {
      model = options.deployments[deployment[1] as string];
      if (model === undefined) return deploymentNotFound();
      path = `/v1${deployment[2] as string}`;
    } else if (resource) {
      path = `/v1${req.path.slice('/openai'.length)}`;
    } else {
      return azureError(404, '404', 'Resource not found');
    }
  } else {
    if (!req.path.startsWith('/openai/v1/')) return azureError(404, '404', 'Resource not found');
    path = req.path.slice('/openai'.length);
    const named = bodyModel(req);
    if (named !== undefined) {
      model = options.deployments[named];
      if (model === undefined) return deploymentNotFound();
    }
  }
  query.delete('api-version');
  const search = query.toString();
  const openai: RecordedRequest = { ...req, path, url: search ? `${path}?${search}` : path, query: search, ...withModel(req, model) };
  const answer = fake.jobs.answer(openai) ?? defaultAnswer(openai, req.body.length);
  return azureShaped(path, answer);
}

function deploymentNotFound(): FakeResponse {
  return azureError(404, 'DeploymentNotFound', 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.');
}

/** The `model` of a JSON body or a form. */
function bodyModel(req: RecordedRequest): string | undefined {
  if (isObject(req.json)) return typeof req.json.model === 'string' ? req.json.model : undefined;
  if (req.headers['content-type']?.startsWith('multipart/form-data')) return formFields(req.body, req.headers['content-type']).get('model');
  return undefined;
}

/** The request as the fake's OpenAI answers should read it: with the model the deployment runs. */
function withModel(req: RecordedRequest, model: string | undefined): Partial<RecordedRequest> {
  if (model === undefined) return {};
  if (isObject(req.json)) return { json: { ...req.json, model } };
  const contentType = req.headers['content-type'];
  if (!contentType?.startsWith('multipart/form-data')) return {};
  const text = req.body.toString('latin1');
  const renamed = text.replace(/(name="model"\r\n(?:[^\r\n]+\r\n)*\r\n)[^\r]*/, (_all, head: string) => head + model);
  return { body: Buffer.from(renamed, 'latin1') };
}

/** Content filter results on chat and completions answers, as Azure adds them. */
function azureShaped(path: string, answer: FakeResponse): FakeResponse {
  const filtered = path === '/v1/chat/completions' || path === '/v1/completions';
  const headers = { ...answer.headers, 'apim-request-id': fakeId('apim-'), 'x-ms-region': 'Sweden Central' };
  if (!filtered || (answer.status ?? 200) >= 400) return { ...answer, headers };
  if (answer.chunks) return { ...answer, headers: { ...headers, ...SSE_HEADERS }, chunks: azureStream(answer.chunks) };
  if (!isObject(answer.body)) return { ...answer, headers };
  const body = answer.body as Json;
  const choices = Array.isArray(body.choices) ? body.choices.map((c) => ({ ...(c as Json), content_filter_results: FILTER_SAFE })) : body.choices;
  return { ...answer, headers, body: { ...body, choices, prompt_filter_results: PROMPT_FILTER_RESULTS } };
}

/** Azure's stream: an empty first chunk with the prompt's filter results (sent in two writes),
 * filter results on every choice, and a chunk with empty `choices` before the usage. */
function azureStream(chunks: ReadonlyArray<string | Buffer>): string[] {
  const first = `data: ${JSON.stringify({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: PROMPT_FILTER_RESULTS })}\n\n`;
  const out = [first.slice(0, 40), first.slice(40)];
  for (const chunk of chunks) {
    const text = chunk.toString();
    const data = text.startsWith('data: ') ? text.slice(6).trim() : '';
    if (data === '' || data === '[DONE]') {
      out.push(text);
      continue;
    }
    const event = JSON.parse(data) as Json;
    const choices = Array.isArray(event.choices) ? (event.choices as Json[]) : [];
    if (choices.length === 0) {
      // Before the usage: a chunk of no choices and no usage (Azure's late content filter pass).
      const { usage: _usage, ...rest } = event;
      out.push(`data: ${JSON.stringify({ ...rest, choices: [] })}\n\n`);
      out.push(text);
      continue;
    }
    out.push(`data: ${JSON.stringify({ ...event, choices: choices.map((c) => ({ ...c, content_filter_results: FILTER_SAFE })) })}\n\n`);
  }
  return out;
}
