// A streamed chat or completions request reports its usage only when it sets
// `stream_options.include_usage`; when the client did not, the gateway sets it for the upstream
// (and the usage tap takes the extra chunk out of the client's stream again). The client's bytes
// are kept as they were, with one member inserted at the start of the object; a request that
// already has `stream_options` is re-serialised with the flag set instead; one too large to have been
// parsed (src/relay/json-digest.ts) has only its `stream_options` written again, in place.
import type { RequestBody } from '../relay/body.js';
import { isObject } from '../json-object.js';

const STREAMS_USAGE_ON_REQUEST = new Set(['createChatCompletion', 'createCompletion']);
const INSERT = Buffer.from('"stream_options":{"include_usage":true},');


/** The body to send upstream instead, or undefined when it needs no change. */
export function askForUsage(operation: string, body: RequestBody): (RequestBody & { kind: 'buffered' }) | undefined {
  if (body.kind !== 'buffered' || !body.json || body.facts.stream !== true || !STREAMS_USAGE_ON_REQUEST.has(operation)) return undefined;
  const options = body.json.stream_options;
  if (isObject(options) && options.include_usage === true) return undefined;
  if (options !== undefined && options !== null && !isObject(options)) return undefined; // the upstream will answer 400

  if (options === undefined) {
    const open = body.bytes.indexOf(0x7b);
    if (open !== -1) {
      const bytes = Buffer.concat([body.bytes.subarray(0, open + 1), INSERT, body.bytes.subarray(open + 1)]);
      return { ...body, bytes, json: { stream_options: { include_usage: true }, ...body.json } };
    }
  }
  const streamOptions = { ...(isObject(options) ? options : {}), include_usage: true };
  const json = { ...body.json, stream_options: streamOptions };
  const span = body.digest?.spans.get('stream_options');
  if (span) {
    const [start, end] = span;
    const bytes = Buffer.concat([body.bytes.subarray(0, start), Buffer.from(JSON.stringify(streamOptions)), body.bytes.subarray(end)]);
    return { ...body, bytes, json };
  }
  return { ...body, bytes: Buffer.from(JSON.stringify(json)), json };
}
