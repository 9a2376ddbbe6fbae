// The body sent upstream for a request whose model is an alias (src/pool/aliases.ts) or an Azure
// deployment (upstream-body.ts): the bytes the client sent with only the value of the top-level
// `model` member replaced, wherever it stands and
// however the client wrote it (spacing, `\u` escapes in the key or the value). Nothing else is
// parsed and written again: a nested `model` (in `messages`, in a tool) is not a member of the root
// and keeps its bytes. A key given twice never gets here (json-shape.ts refuses the body).
//
// - A JSON body parsed whole: one more pass of json-shape.ts over it finds the member.
// - A JSON body too large to parse (json-digest.ts): its digest knows where `model` lies; the other
//   places it knows move by the difference in length, for include-usage.ts to write in after.
// - A multipart form: the `model` field stood before the first file (body.ts reads it there); its
//   value is replaced as the stream passes, and the Content-Length follows.
// - A WebSocket event (a `response.create`, a `session.update`): parsed whole already; the member
//   is found as in a JSON body, nested when the event holds the model deeper.
import { Transform, type TransformCallback, pipeline } from 'node:stream';
import type { RequestBody } from './body.js';
import { memberSpan } from './json-shape.js';

type Span = readonly [number, number];

/** `body` as it is to be sent with `model` in place of the one it names. */
export function withModel(body: RequestBody, model: string): RequestBody {
  if (body.kind === 'buffered') {
    const span = body.digest ? body.digest.spans.get('model') : memberSpan(body.bytes, 'model');
    if (!span) return body;
    const [start, end] = span;
    const value = Buffer.from(JSON.stringify(model));
    const bytes = Buffer.concat([body.bytes.subarray(0, start), value, body.bytes.subarray(end)]);
    const delta = value.length - (end - start);
    const digest = body.digest && { ...body.digest, spans: shifted(body.digest.spans, end, delta) };
    // `json` is what include-usage.ts writes again when it must: the model in it is the one sent.
    const json = body.json && { ...body.json, model };
    // The facts name the model the bytes now hold, so that a second step (an Azure deployment,
    // upstream-body.ts) replaces this one.
    return { ...body, bytes, json, digest, facts: { ...body.facts, model } };
  }
  if (body.kind === 'stream') {
    const span = body.facts.form?.modelSpan;
    if (!span) return body;
    const value = Buffer.from(model, 'utf8');
    const stream = new Splice(span, value);
    // pipeline, not pipe: a client that goes away mid-upload must fail the upstream body too.
    pipeline(body.stream, stream, () => {});
    const delta = value.length - (span[1] - span[0]);
    const form = body.facts.form && { ...body.facts.form, modelSpan: [span[0], span[0] + value.length] as const };
    return {
      ...body,
      stream,
      contentLength: body.contentLength === undefined ? undefined : body.contentLength + delta,
      facts: { ...body.facts, model, form },
    };
  }
  return body;
}

/** A WebSocket event's bytes with the value of the member at `path` (`['model']`,
 * `['session', 'model']`) replaced by `model`, every other byte as the client wrote it; undefined
 * when the event has no such member. */
export function eventWithModel(bytes: Buffer, path: readonly string[], model: string): Buffer | undefined {
  let start = 0;
  let end = bytes.length;
  for (const key of path) {
    const span = memberSpan(bytes.subarray(start, end), key);
    if (!span) return undefined;
    [start, end] = [start + span[0], start + span[1]];
  }
  return Buffer.concat([bytes.subarray(0, start), Buffer.from(JSON.stringify(model)), bytes.subarray(end)]);
}

function shifted(spans: ReadonlyMap<string, Span>, after: number, delta: number): Map<string, Span> {
  const out = new Map<string, Span>();
  for (const [field, [start, end]] of spans) out.set(field, start >= after ? [start + delta, end + delta] : [start, end]);
  return out;
}

/** Passes a stream through with the bytes of `span` (offsets from its start) replaced by `value`. */
class Splice extends Transform {
  private offset = 0;

  constructor(
    private readonly span: Span,
    private readonly value: Buffer,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const [start, end] = this.span;
    const from = this.offset;
    const to = from + chunk.length;
    this.offset = to;
    if (to <= start || from >= end) return done(null, chunk);
    if (start > from) this.push(chunk.subarray(0, start - from));
    if (start >= from) this.push(this.value);
    if (to > end) this.push(chunk.subarray(end - from));
    done();
  }
}
