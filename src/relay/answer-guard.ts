// What an upstream answer must pass, on every status, before any of it reaches a client (README,
// "The key pool": key material is masked). Its headers: each value with a pool key in it is
// masked, a header whose name holds one is dropped, and a redirect whose `location` holds one is
// not passed on at all (a client follows it, and a masked URL is no use). Its body: the gateway asks for
// `accept-encoding: identity`, and one that comes compressed anyway is decoded here, so that the
// masking and the usage tap read plain bytes and the client gets identity; an encoding the gateway
// cannot decode could not be masked either, and is refused. The body's own masking comes later, as
// it is held (attempts.ts) or streamed (forward.ts).
import type { IncomingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream';
import type { Transform } from 'node:stream';
import {
  type BrotliOptions,
  type ZlibOptions,
  brotliDecompressSync,
  constants,
  createBrotliDecompress,
  createGunzip,
  createInflate,
  gunzipSync,
  inflateSync,
} from 'node:zlib';
import { GatewayError } from '../errors.js';
import type { UpstreamAnswer } from './exchange.js';
import type { Masker } from './mask.js';

export type Guarded = { ok: true; answer: UpstreamAnswer } | { ok: false; error: GatewayError };

// Lenient on a body that ends early, as browsers and undici's fetch are: a cut is seen on the
// upstream stream itself. Decoding is bounded by whoever reads: a held body stops at its limit
// (1 MB inflated for an error), a streamed one goes at the client's pace.
const SYNC_DECODERS: Record<string, (body: Buffer, options: ZlibOptions & BrotliOptions) => Buffer> = {
  gzip: gunzipSync,
  'x-gzip': gunzipSync,
  deflate: inflateSync,
  br: brotliDecompressSync,
};

const DECODERS: Record<string, () => Transform> = {
  gzip: () => createGunzip({ finishFlush: constants.Z_SYNC_FLUSH }),
  'x-gzip': () => createGunzip({ finishFlush: constants.Z_SYNC_FLUSH }),
  deflate: () => createInflate({ finishFlush: constants.Z_SYNC_FLUSH }),
  br: () => createBrotliDecompress({ finishFlush: constants.BROTLI_OPERATION_FLUSH }),
};

// Answers that have no body to decode (RFC 9110 section 6.4.1).
const BODILESS = new Set([204, 304]);

function refuse(message: string): { ok: false; error: GatewayError } {
  return { ok: false, error: new GatewayError('upstream_invalid_response', { message }) };
}

function encodings(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const names = (Array.isArray(value) ? value.join(',') : value).split(',');
  return names.map((n) => n.trim().toLowerCase()).filter((n) => n !== '' && n !== 'identity');
}

/** The headers with every pool key masked (escaped forms too) and every OpenAI-shaped token (an
 * upstream that echoes a request's headers), and whether `location` held a pool key. The one
 * place an answer's headers are masked, HTTP and WebSocket alike. */
export function maskHeaders(headers: IncomingHttpHeaders, masker: Masker): { headers: IncomingHttpHeaders; keyInLocation: boolean } {
  let out: IncomingHttpHeaders | undefined;
  let keyInLocation = false;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (masker.inName(name)) {
      out ??= { ...headers };
      delete out[name];
      continue;
    }
    const values = Array.isArray(value) ? value : [value];
    const secrets = values.map((v) => masker.header(v));
    const masked = values.map((v, i) => {
      const text = masker.text(secrets[i] ?? v);
      return text === v ? undefined : text;
    });
    if (masked.every((m) => m === undefined)) continue;
    if (name === 'location' && secrets.some((m) => m !== undefined)) keyInLocation = true;
    out ??= { ...headers };
    const clean = values.map((v, i) => masked[i] ?? v);
    // set-cookie is the one header Node gives as an array.
    out[name] = (Array.isArray(value) ? clean : clean[0]) as string & string[];
  }
  return { headers: out ?? headers, keyInLocation };
}

type Encoding = { ok: true; headers: IncomingHttpHeaders; decode?: string } | { ok: false; error: GatewayError };

/** The headers guarded, and the decoder the body needs, if any. */
function inspect(upstream: IncomingHttpHeaders, masker: Masker): Encoding {
  const { headers, keyInLocation } = maskHeaders(upstream, masker);
  if (keyInLocation) return refuse('The upstream redirected to a URL that holds a pool key; the gateway does not pass it on.');
  // A transfer coding other than chunked (gzip, …) was never offered: undici passes such a body
  // on still coded, where no mask could read it.
  if (encodings(upstream['transfer-encoding']).some((name) => name !== 'chunked')) {
    return refuse('The upstream sent its answer in a transfer coding the gateway did not offer.');
  }
  const names = encodings(headers['content-encoding']);
  if (names.length === 0) return { ok: true, headers };
  const name = names[0] as string;
  if (names.length > 1 || !(name in DECODERS)) return refuse('The upstream compressed its answer in an encoding the gateway cannot decode, although it asked for none.');
  // The size and the encoding were those of the compressed body.
  const plain: IncomingHttpHeaders = { ...headers };
  delete plain['content-encoding'];
  delete plain['content-length'];
  return { ok: true, headers: plain, decode: name };
}

export function guardAnswer(answer: UpstreamAnswer, method: string, masker: Masker): Guarded {
  const checked = inspect(answer.headers, masker);
  if (!checked.ok) return checked;
  const { headers, decode } = checked;
  if (decode === undefined || method === 'HEAD' || BODILESS.has(answer.status)) {
    return { ok: true, answer: headers === answer.headers ? answer : { ...answer, headers } };
  }
  // pipeline ends each stream with the other's error: a destroyed decoder aborts the upstream, and
  // a cut upstream fails the decoder with undici's own error, which the relay maps by its code.
  const body = pipeline(answer.body, (DECODERS[decode] as () => Transform)(), () => {});
  return { ok: true, answer: { status: answer.status, headers, body } };
}

/** The same for an answer read whole already (a refused WebSocket handshake's first bytes). */
export function guardHeldAnswer(headers: IncomingHttpHeaders, body: Buffer, masker: Masker, limit: number): { ok: true; headers: IncomingHttpHeaders; body: Buffer } | { ok: false; error: GatewayError } {
  const checked = inspect(headers, masker);
  if (!checked.ok) return checked;
  if (checked.decode === undefined || body.length === 0) return { ok: true, headers: checked.headers, body: masker.bytes(body) };
  try {
    const plain = SYNC_DECODERS[checked.decode]?.(body, { finishFlush: checked.decode === 'br' ? constants.BROTLI_OPERATION_FLUSH : constants.Z_SYNC_FLUSH, maxOutputLength: limit });
    return { ok: true, headers: checked.headers, body: masker.bytes(plain ?? body) };
  } catch (err) {
    return { ok: false, error: new GatewayError('upstream_invalid_response', { message: 'The upstream sent a compressed answer the gateway could not decode.', cause: err }) };
  }
}
