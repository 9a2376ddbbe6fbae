// Where a request goes on the upstream that serves it, decided from the operation it matched at
// the door (src/operations/match.ts), never from the raw path again.
//   openai:        base path + the path below /v1, query as the client sent it.
//   azure v1:      the same, plus `api-version` when one is set (`preview`); the deployment goes
//                  into the body's `model` (src/relay/upstream-body.ts).
//   azure classic: the operations served per deployment go to `/deployments/<deployment>/…`, the
//                  account's own (files, batches, fine-tuning, models) to `/<path>`, both with
//                  `api-version`; anything else has no route there: 404 route_not_supported.
// The client's query is kept, less any `api-version` of its own: the upstream's is the operator's.
import { GatewayError } from '../errors.js';
import type { Operation } from '../operations/match.js';
import type { Upstream } from '../pool/pool.js';
import { DEPLOYMENT_PATTERN } from '../pool/upstream-kind.js';

const DEPLOYMENT_NAME = new RegExp(DEPLOYMENT_PATTERN);

/** Operations Azure's classic API serves under `/deployments/<deployment>`. */
const PER_DEPLOYMENT: ReadonlySet<string> = new Set([
  'createChatCompletion',
  'createCompletion',
  'createEmbedding',
  'createImage',
  'createImageEdit',
  'createImageVariation',
  'createTranscription',
  'createTranslation',
  'createSpeech',
]);

/** Operations Azure's classic API serves at `/openai/<path>`, as OpenAI does at `/v1/<path>`. */
const PER_RESOURCE: ReadonlySet<string> = new Set([
  'listFiles',
  'createFile',
  'retrieveFile',
  'deleteFile',
  'downloadFile',
  'listBatches',
  'createBatch',
  'retrieveBatch',
  'cancelBatch',
  'listPaginatedFineTuningJobs',
  'createFineTuningJob',
  'retrieveFineTuningJob',
  'cancelFineTuningJob',
  'listFineTuningJobCheckpoints',
  'listFineTuningEvents',
  'pauseFineTuningJob',
  'resumeFineTuningJob',
  'listModels',
  'retrieveModel',
]);

export type TargetDecision = { ok: true; path: string } | { ok: false; error: GatewayError };

/** The deployment a model runs on at an Azure upstream: its mapping, else the model's own name. */
export function deploymentOf(upstream: Upstream, model: string): string {
  return upstream.azure?.deployments.get(model) ?? model;
}

/** The query string with `api-version=<version>` in place of any the client gave. */
export function withApiVersion(search: string, version: string): string {
  const kept = search
    .slice(1)
    .split('&')
    .filter((pair) => pair !== '' && safeDecode(pair.split('=')[0] as string) !== 'api-version');
  kept.push(`api-version=${encodeURIComponent(version)}`);
  return `?${kept.join('&')}`;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/** The operation's path below /v1, from its template and the parameters the request gave. */
function operationPath(operation: Operation, path: string): string {
  if (operation.template === undefined) return path;
  return operation.template.slice(3).replace(/\{([^}]+)\}/g, (_whole, name: string) => operation.params[name] ?? '');
}

function notSupported(upstream: Upstream, operation: Operation): GatewayError {
  const what = operation.template === undefined ? 'This route' : `${operation.id} (${operation.template})`;
  return new GatewayError('route_not_supported', {
    message: `${what} is not served by upstream "${upstream.id}" (Azure OpenAI, classic API): use an upstream of Azure's v1 API or of OpenAI for it.`,
  });
}

/**
 * The path and query to send. `rest` is the canonical path below /v1 plus the client's query;
 * `model` the model the request names (the deployment of the classic API's per-deployment routes).
 */
export function upstreamTarget(upstream: Upstream, operation: Operation, rest: string, model: string | undefined): TargetDecision {
  const azure = upstream.azure;
  if (azure === undefined) return { ok: true, path: upstream.basePath + rest };
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  const search = q === -1 ? '' : rest.slice(q);
  if (azure.form === 'v1') {
    return { ok: true, path: upstream.basePath + path + (azure.apiVersion === undefined ? search : withApiVersion(search, azure.apiVersion)) };
  }
  const version = withApiVersion(search, azure.apiVersion ?? '');
  if (PER_RESOURCE.has(operation.id)) return { ok: true, path: upstream.basePath + operationPath(operation, path) + version };
  if (!PER_DEPLOYMENT.has(operation.id)) return { ok: false, error: notSupported(upstream, operation) };
  if (model === undefined) {
    return {
      ok: false,
      error: new GatewayError('invalid_request', {
        message: `Upstream "${upstream.id}" (Azure OpenAI, classic API) picks the deployment by \`model\`: give it (in a form, before the file).`,
        param: 'model',
      }),
    };
  }
  const deployment = deploymentOf(upstream, model);
  // An unmapped model stands for a deployment of its own name, which must be one Azure could have.
  if (!DEPLOYMENT_NAME.test(deployment) || /^\.+$/.test(deployment)) {
    return { ok: false, error: new GatewayError('invalid_request', { message: `Upstream "${upstream.id}" has no deployment for this model.`, param: 'model' }) };
  }
  return { ok: true, path: `${upstream.basePath}/deployments/${deployment}${operationPath(operation, path)}${version}` };
}

/** Throws the refusal of the upstream a request would go to (pinned, else by model), before the
 * request is admitted: a route that upstream cannot serve costs the user nothing. */
export function checkUpstreamRoute(
  pool: { find(upstreamId: string, keyId: string): { upstream: Upstream } | undefined; upstreamFor(model: string | undefined): Upstream | undefined },
  operation: Operation,
  rest: string,
  model: string | undefined,
  pinned: { upstreamId: string; keyId: string } | undefined,
): void {
  const upstream = pinned ? pool.find(pinned.upstreamId, pinned.keyId)?.upstream : pool.upstreamFor(model);
  if (upstream?.azure === undefined) return;
  const decision = upstreamTarget(upstream, operation, rest, model);
  if (!decision.ok) throw decision.error;
}
