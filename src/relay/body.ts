// The request body: JSON is read whole (bounded) to learn the model, `stream` and the token cap,
// and is forwarded byte for byte; everything else (multipart uploads, audio, SDP) streams through
// under a size limit and is never held in memory.
import type { IncomingMessage } from 'node:http';
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import secureJson from 'secure-json-parse';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';

export interface RequestFacts {
  model?: string;
  stream?: boolean;
  /** `max_tokens`, `max_completion_tokens` or `max_output_tokens`, whichever the request set. */
  maxTokens?: number;
}

export type RequestBody =
  | { kind: 'none' }
  | { kind: 'buffered'; bytes: Buffer; json?: Record<string, unknown>; facts: RequestFacts }
  | { kind: 'stream'; stream: Readable; contentLength?: number };

type BodyLimits = Config['limits'];

const TOKEN_FIELDS = ['max_tokens', 'max_completion_tokens', 'max_output_tokens'] as const;

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

/** Reads what the gateway needs from a JSON body; wrong types for those fields are 400s. */
export function factsOf(json: Record<string, unknown>): RequestFacts {
  const facts: RequestFacts = {};
  if (json.model !== undefined) {
    if (typeof json.model !== 'string') throw invalid('`model` must be a string.', 'model');
    facts.model = json.model;
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

function checkMultipart(contentType: string): void {
  if (!BOUNDARY.test(contentType)) {
    throw new GatewayError('invalid_multipart', {
      message: 'A multipart body needs a boundary of 1 to 70 characters in its Content-Type.',
    });
  }
}

/** Decides how the body crosses the gateway, enforcing the size limits (RELIABILITY.md 30). */
export async function readRequestBody(req: IncomingMessage, limits: BodyLimits): Promise<RequestBody> {
  if (!hasBody(req)) return { kind: 'none' };
  const contentType = req.headers['content-type'] ?? '';
  const type = mediaType(contentType);
  const length = declaredLength(req);

  if (isJson(type)) {
    if (length !== undefined && length > limits.jsonBodyBytes) throw tooLarge(limits.jsonBodyBytes);
    const bytes = await readWhole(req, limits.jsonBodyBytes);
    const json = parseJson(bytes);
    return { kind: 'buffered', bytes, json, facts: json ? factsOf(json) : {} };
  }

  const limit = type === 'multipart/form-data' ? limits.multipartBodyBytes : limits.otherBodyBytes;
  if (type === 'multipart/form-data') checkMultipart(contentType);
  if (length !== undefined) {
    if (length > limit) throw tooLarge(limit);
    // Node's parser never delivers more than Content-Length bytes, so the limit already holds.
    return { kind: 'stream', stream: req, contentLength: length };
  }
  // pipeline, not pipe: a client that goes away mid-upload must fail the upstream body too.
  const limited = new LimitStream(limit);
  pipeline(req, limited, () => {});
  return { kind: 'stream', stream: limited };
}
