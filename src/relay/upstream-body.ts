// The body an upstream gets. For an Azure upstream of the v1 API with `deployments`, the request's
// model becomes its deployment: in a JSON body the top-level `model` string and in a form the
// `model` field read before the file (model-sent.ts), in a form whose `model` comes after its file
// that field as it passes (form-model.ts); no other byte changes. Everywhere else, and for models
// the mapping does not name, the body goes as the client sent it. (The classic API takes the
// deployment in the path: upstream-target.ts.)
import { type Readable, pipeline } from 'node:stream';
import type { Upstream } from '../pool/pool.js';
import { type RequestBody, mediaType, multipartBoundary } from './body.js';
import { FormModelRename } from './form-model.js';
import { withModel } from './model-sent.js';
import { deploymentOf } from './upstream-target.js';

export interface OutgoingBody {
  body: Buffer | Readable | undefined;
  /** Its length, when known before it is sent. */
  length: number | undefined;
}

export function asSent(body: RequestBody): OutgoingBody {
  if (body.kind === 'buffered') return { body: body.bytes, length: body.bytes.length };
  if (body.kind === 'stream') return { body: body.stream, length: body.contentLength };
  return { body: undefined, length: undefined };
}

/** The body for `upstream`; `contentType` is the request's. A stream body is wrapped once: call
 * this once per upstream and request (attempts.ts keeps what it made). */
export function bodyForUpstream(upstream: Upstream, body: RequestBody, contentType: string | undefined): OutgoingBody {
  const deployments = upstream.azure?.form === 'v1' ? upstream.azure.deployments : undefined;
  if (deployments === undefined || deployments.size === 0 || body.kind === 'none') return asSent(body);
  // The model the body holds now: an alias is already replaced by its upstream model (route.ts).
  const model = body.facts.model;
  if (model !== undefined) return deployments.has(model) ? asSent(withModel(body, deploymentOf(upstream, model))) : asSent(body);
  // A form whose model comes after its file: renamed as it passes, its length then unknown.
  if (body.kind !== 'stream' || !body.facts.modelHidden || mediaType(contentType) !== 'multipart/form-data') return asSent(body);
  const rename = new FormModelRename(multipartBoundary(contentType ?? ''), (m) => deploymentOf(upstream, m));
  pipeline(body.stream, rename, () => {});
  return { body: rename, length: undefined };
}
