// The request body: JSON is read whole (bounded) to learn the model, `stream` and the token cap,
// and is forwarded byte for byte. Up to PARSE_BYTES it is parsed; past that it is read in one pass
// that builds no tree (src/relay/json-digest.ts), so that what a body costs the gateway follows its
// bytes and not its shape, and other requests are answered meanwhile. Everything else (multipart
// uploads, audio, SDP) streams through under a size limit and is never held in memory. A form of an
// operation that costs has its text fields before the first file read on the way (at most
// FORM_HEAD_BYTES), for its `model` and the fields its worst case depends on (FORM_FIELDS).
import type { IncomingMessage } from 'node:http';
import { Readable, Transform, type TransformCallback, pipeline } from 'node:stream';
import secureJson from 'secure-json-parse';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';
import { idsInBody, objectKindOf } from '../pool/objects.js';
import { FieldGuard, type FieldsScan, scanLeadingFields } from './form-fields.js';
import { type JsonDigest, digestJson } from './json-digest.js';
import { checkJsonShape } from './json-shape.js';

export interface RequestFacts {
  model?: string;
  stream?: boolean;
  /** `max_tokens`, `max_completion_tokens` or `max_output_tokens`, whichever the request set. */
  maxTokens?: number;
  /** A form whose `model` may stand after its file: the gateway cannot tell which model it names. */
  modelHidden?: boolean;
  /** What a form of an operation that costs showed of itself before its first file. */
  form?: FormFacts;
}

export interface FormFacts {
  /** The FORM_FIELDS that stand before the first file (the first value of each). */
  fields: ReadonlyMap<string, string>;
  /** The whole form was read: a field it does not show is absent, not after a file. */
  complete: boolean;
  /** The tracked object ids its id fields name (read before the first file). */
  ids?: string[];
  /** The body's size: its Content-Length, else the limit it is held to. */
  bytes: number;
  /** Where the `model` field's value lies in the body's bytes: [start, end). */
  modelSpan?: readonly [number, number];
}

/** The fields of a form its worst case depends on, read when they stand before the file. */
export const FORM_FIELDS: ReadonlySet<string> = new Set(['model', 'n', 'size', 'quality', 'response_format', 'stream', 'timestamp_granularities[]']);
// Those that change what the request costs may stand once: the form is refused when one comes again.
const GUARDED_FIELDS: ReadonlySet<string> = new Set(['model', 'n', 'size', 'quality', 'stream']);

export type RequestBody =
  | { kind: 'none' }
  | {
      kind: 'buffered';
      bytes: Buffer;
      /** The body's top-level object: whole when it was parsed, else only its TOP_FIELDS (json-digest.ts). */
      json?: Record<string, unknown>;
      /** For a body past PARSE_BYTES: what the one pass read of it (object ids, prompt sizes). */
      digest?: JsonDigest;
      facts: RequestFacts;
    }
  | { kind: 'stream'; stream: Readable; contentLength?: number; facts: RequestFacts };

type BodyLimits = Config['limits'];

/**
 * The largest JSON body that is parsed whole. Parsing 1 MB takes a few milliseconds and at most
 * some tens of MB of heap, whatever its shape; a 42 MB array of 14 million `{}` took 13 s and 1 GB.
 * Past this, nothing the gateway does with a body needs the tree.
 */
export const PARSE_BYTES = 1024 * 1024;

const TOKEN_FIELDS = ['max_tokens', 'max_completion_tokens', 'max_output_tokens'] as const;
/**
 * The longest model name a request may give. OpenAI's ids are short (a fine-tuned one,
 * `ft:gpt-4o-mini-2024-07-18:org:suffix:id`, stays well under 100 characters); a bound keeps the
 * work of matching a user's model globs, the pool's and the price table's small.
 */
export const MAX_MODEL_LENGTH = 256;

export function mediaType(contentType: string | undefined): string {
  if (!contentType) return '';
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

function isJson(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}

function tooLarge(limit: number): GatewayError {
  return new GatewayError('request_too_large', { message: `The request body is larger than ${limit} bytes.` });
}

function declaredLength(req: IncomingMessage): number | undefined {
  const raw = req.headers['content-length'];
  return raw === undefined ? undefined : Number(raw);
}

export function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || declaredLength(req) !== undefined;
}

function readWhole(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // A client that went away while the request was being authenticated: its 'aborted' and
    // 'error' have been and gone, and no 'end' will come.
    if (req.destroyed) return reject(new Error('client aborted the request body'));
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onAborted = () => onError(new Error('client aborted the request body'));
    function cleanup() {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

/** Counts bytes of a body sent without Content-Length and fails it as soon as it passes the limit. */
class LimitStream extends Transform {
  private seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) done(tooLarge(this.limit));
    else done(null, chunk);
  }
}

function invalid(message: string, param: string | null = null): GatewayError {
  return new GatewayError('invalid_request', { message, param });
}

/** The model a request names, refused when it is longer than any real model id. */
export function checkModel(model: string): string {
  if (model.length > MAX_MODEL_LENGTH) throw invalid(`\`model\` must be at most ${MAX_MODEL_LENGTH} characters.`, 'model');
  return model;
}

/** Reads what the gateway needs from a JSON body; wrong types for those fields are 400s. */
export function factsOf(json: Record<string, unknown>): RequestFacts {
  const facts: RequestFacts = {};
  if (json.model !== undefined) {
    if (typeof json.model !== 'string') throw invalid('`model` must be a string.', 'model');
    facts.model = checkModel(json.model);
  }
  if (json.stream !== undefined && json.stream !== null) {
    if (typeof json.stream !== 'boolean') throw invalid('`stream` must be a boolean.', 'stream');
    facts.stream = json.stream;
  }
  for (const field of TOKEN_FIELDS) {
    const value = json[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw invalid(`\`${field}\` must be a non-negative integer.`, field);
    }
    facts.maxTokens = value;
  }
  return facts;
}

function parseJson(bytes: Buffer): Record<string, unknown> | undefined {
  if (bytes.length === 0) return undefined;
  let parsed: unknown;
  try {
    parsed = secureJson.parse(bytes, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    throw new GatewayError('invalid_json', { message: `The request body is not valid JSON: ${(err as Error).message}`, cause: err });
  }
  return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
}

const BOUNDARY = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))\s*(?:;|$)/i;
// Room for the text fields SDKs put before a form's file (model, language, prompt …).
const FORM_HEAD_BYTES = 256 * 1024;

export function multipartBoundary(contentType: string): string {
  const match = BOUNDARY.exec(contentType);
  if (!match) {
    throw new GatewayError('invalid_multipart', {
      message: 'A multipart body needs a boundary of 1 to 70 characters in its Content-Type.',
    });
  }
  return (match[1] ?? match[2]) as string;
}

/** What a form says of its FORM_FIELDS (form-fields.ts), and the body to send: what was read to
 * find out, then the rest as it arrives, through a guard that fails the body if a guarded field
 * comes again. */
async function readFormFields(source: Readable, boundary: string, idFields: readonly string[]): Promise<{ scan: FieldsScan; stream: Readable }> {
  const names = idFields.length === 0 ? FORM_FIELDS : new Set([...FORM_FIELDS, ...idFields]);
  const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let size = 0;
  let scan: FieldsScan = { kind: 'more' };
  let ended = false;
  while (scan.kind === 'more' && size < FORM_HEAD_BYTES) {
    const next = await chunks.next();
    if (next.done) {
      ended = true;
      break;
    }
    head.push(next.value);
    size += next.value.length;
    scan = scanLeadingFields(Buffer.concat(head, size), boundary, names);
  }
  if (scan.kind === 'more') scan = { kind: 'hidden' };
  if (scan.kind === 'twice') throw twice(scan.name);
  async function* replay(): AsyncGenerator<Buffer> {
    yield* head;
    if (ended) return;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
  }
  const guarded = idFields.length === 0 ? GUARDED_FIELDS : new Set([...GUARDED_FIELDS, ...idFields]);
  const guard = new FieldGuard(boundary, guarded, (name, late) => (late ? afterFile(name) : twice(name)), new Set(idFields));
  pipeline(Readable.from(replay(), { objectMode: false }), guard, () => {});
  return { scan, stream: guard };
}

/** A field naming an object came after a file: the gateway checked the form's objects before it. */
function afterFile(name: string): GatewayError {
  return new GatewayError('invalid_multipart', {
    message: `The form gives \`${name}\` after a file: it names an object, which this gateway checks before relaying, so send it before any file.`,
    param: name,
  });
}

function twice(name: string): GatewayError {
  return new GatewayError('invalid_multipart', {
    message: `The form gives \`${name}\` more than once: send it once, before the file.`,
    param: name,
  });
}

/** The tracked object ids the form's `idFields` name: a field's value as an id, or ids in it as JSON. */
function formIds(fields: ReadonlyMap<string, string>, idFields: readonly string[]): string[] {
  const ids: string[] = [];
  for (const name of idFields) {
    const value = fields.get(name)?.trim();
    if (value === undefined) continue;
    if (objectKindOf(value)) ids.push(value);
    else if (value.startsWith('{') || value.startsWith('[')) {
      try {
        ids.push(...idsInBody({ [name]: JSON.parse(value) as unknown }));
      } catch {
        // Not JSON: no id the upstream could read in it either.
      }
    }
  }
  return ids;
}

/** The facts of a form from what was read before its file. */
function formFacts(scan: FieldsScan, bytes: number, idFields: readonly string[]): RequestFacts {
  if (scan.kind !== 'read') {
    // A field naming an object may hide in what could not be read: the form is not relayed.
    if (idFields.length > 0) {
      throw new GatewayError('invalid_multipart', {
        message: `The form's leading fields could not be read (at most ${FORM_HEAD_BYTES} bytes before the first file): send \`${idFields.join('`, `')}\` first.`,
        param: idFields[0],
      });
    }
    return { modelHidden: true, form: { fields: new Map(), complete: false, bytes } };
  }
  const { fields, complete } = scan;
  const model = fields.get('model');
  const modelSpan = scan.spans.get('model');
  const facts: RequestFacts = model !== undefined ? factsOf({ model }) : { modelHidden: !complete };
  const stream = fields.get('stream');
  if (stream !== undefined) facts.stream = stream.trim().toLowerCase() === 'true';
  facts.form = { fields, complete, bytes, ids: formIds(fields, idFields), ...(modelSpan ? { modelSpan } : {}) };
  return facts;
}

/** Decides how the body crosses the gateway, enforcing the size limits (docs/reliability.md, case 30).
 * `formModel`: read a form's `model` on the way (an operation priced by its model). `idFields`: a
 * form's fields that name objects (src/pool/object-operations.ts FORM_ID_FIELDS), read the same
 * way, which must come before any file. */
export async function readRequestBody(req: IncomingMessage, limits: BodyLimits, formModel = false, idFields: readonly string[] = []): Promise<RequestBody> {
  if (!hasBody(req)) return { kind: 'none' };
  const contentType = req.headers['content-type'] ?? '';
  const type = mediaType(contentType);
  const length = declaredLength(req);

  if (isJson(type)) {
    if (length !== undefined && length > limits.jsonBodyBytes) throw tooLarge(limits.jsonBodyBytes);
    const bytes = await readWhole(req, limits.jsonBodyBytes);
    // RFC 8259: a JSON text is sent without a byte order mark. One parser skips it and another
    // refuses the body: the gateway refuses it, so both read the same body or none.
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      throw new GatewayError('invalid_json', { message: 'The request body begins with a byte order mark; send JSON without one.' });
    }
    if (bytes.length > PARSE_BYTES) {
      const digest = await digestJson(bytes);
      const json = digest.object ? digest.top : undefined;
      return { kind: 'buffered', bytes, json, digest, facts: json ? factsOf(json) : {} };
    }
    checkJsonShape(bytes);
    const json = parseJson(bytes);
    return { kind: 'buffered', bytes, json, facts: json ? factsOf(json) : {} };
  }

  const form = type === 'multipart/form-data';
  const limit = form ? limits.multipartBodyBytes : limits.otherBodyBytes;
  const boundary = form ? multipartBoundary(contentType) : undefined;
  let stream: Readable = req;
  if (length !== undefined) {
    // Node's parser never delivers more than Content-Length bytes, so the limit already holds.
    if (length > limit) throw tooLarge(limit);
  } else {
    // pipeline, not pipe: a client that goes away mid-upload must fail the upstream body too.
    const limited = new LimitStream(limit);
    pipeline(req, limited, () => {});
    stream = limited;
  }
  if (boundary === undefined || (!formModel && idFields.length === 0)) return { kind: 'stream', stream, contentLength: length, facts: {} };
  const read = await readFormFields(stream, boundary, idFields);
  return { kind: 'stream', stream: read.stream, contentLength: length, facts: formFacts(read.scan, length ?? limit, idFields) };
}
