// The body an upstream gets. For an Azure upstream of the v1 API with `deployments`, the request's
// model becomes its deployment: in a JSON body the top-level `model` string (model-value.ts), in a
// form the `model` field (form-model.ts); no other byte changes. Everywhere else, and for models
// the mapping does not name, the body goes as the client sent it. (The classic API takes the
// deployment in the path: upstream-target.ts.)
import { type Readable, pipeline } from 'node:stream';
import type { Upstream } from '../pool/pool.js';
import { type RequestBody, mediaType, multipartBoundary } from './body.js';
import { FormModelRename } from './form-model.js';
import { replaceModel } from './model-value.js';
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
  const model = body.facts.model;
  if (body.kind === 'buffered') {
    if (model === undefined || !deployments.has(model)) return asSent(body);
    const bytes = replaceModel(body.bytes, (m) => deploymentOf(upstream, m));
    return { body: bytes, length: bytes.length };
  }
  if (mediaType(contentType) !== 'multipart/form-data') return asSent(body);
  // A form whose model was read before its file names it once (body.ts guards that): the length
  // changes by the difference. A model after the file is renamed too, and the length is not known.
  if (model !== undefined && !deployments.has(model)) return asSent(body);
  if (model === undefined && !body.facts.modelHidden) return asSent(body);
  const rename = new FormModelRename(multipartBoundary(contentType ?? ''), (m) => deploymentOf(upstream, m));
  pipeline(body.stream, rename, () => {});
  const length =
    model !== undefined && body.contentLength !== undefined
      ? body.contentLength + Buffer.byteLength(deploymentOf(upstream, model)) - Buffer.byteLength(model)
      : undefined;
  return { body: rename, length };
}
