// A copy of every answer a gateway's server sends, as the client receives it: status line, headers,
// body bytes (before chunked framing, after any compression), and for a WebSocket the frames it
// wrote. Taken at the server, so that every client a test uses (fetch, undici, the openai SDK,
// raw sockets) is covered without changing what that client sees. No scanning here: the copy
// goes to `sink` (log-capture.ts in this process, a file for a child gateway process).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';

export interface TappedAnswer {
  /** Which server: `gateway 127.0.0.1:4321`. */
  server: string;
  method: string;
  /** The request target as sent (path and query). */
  target: string;
  status: number;
  /** The status line and headers as sent, one per line. */
  head: string;
  body: Buffer;
  /** The request's body (its first REQUEST_LIMIT bytes): what the client itself sent. */
  sent?: Buffer;
  websocket?: boolean;
}

export type AnswerSink = (answer: TappedAnswer) => void;

/** A request body sent to the admin API: where secrets are given to a gateway at run time. */
export interface TappedRequest {
  method: string;
  target: string;
  body: Buffer;
}

export type RequestSink = (request: TappedRequest) => void;

/** Whether a request is one that gives a gateway settings (a POST, PUT or PATCH to /admin/). */
export function isAdminChange(req: IncomingMessage | Http2ServerRequest): boolean {
  return /^(POST|PUT|PATCH)$/.test(req.method ?? '') && (req.url ?? '').startsWith('/admin/');
}

/** Copies a request's body as the gateway reads it (watching its 'data' events, without reading
 * the stream itself), handing it to `sink` at its end. */
export function tapRequest(req: IncomingMessage | Http2ServerRequest, sink: RequestSink): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const r = req as any;
  const emit = r.emit;
  r.emit = function (this: unknown, event: string, ...args: unknown[]) {
    if (event === 'data' && size < REQUEST_LIMIT) {
      const bytes = bytesOf(args[0]);
      if (bytes) {
        chunks.push(bytes);
        size += bytes.length;
      }
    } else if (event === 'end') {
      sink({ method: req.method ?? '', target: req.url ?? '', body: Buffer.concat(chunks) });
    }
    return emit.call(this, event, ...args);
  };
}

/** Bytes of one answer kept: past this a body's tail is not copied (no test answer comes near). */
const BODY_LIMIT = 32 * 1024 * 1024;
/** Bytes of a request body kept (an admin request past this is no settings change). */
const REQUEST_LIMIT = 1024 * 1024;

function bytesOf(chunk: unknown, encoding?: unknown): Buffer | undefined {
  if (chunk === undefined || chunk === null || typeof chunk === 'function') return undefined;
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk), typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
}

function headerText(headers: unknown): string {
  if (Array.isArray(headers)) {
    // writeHead's flat [name, value, name, value] form, or [[name, value]] pairs.
    if (headers.length > 0 && Array.isArray(headers[0])) return headers.map((pair) => `${pair[0]}: ${pair[1]}`).join('\r\n');
    const lines: string[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
    return lines.join('\r\n');
  }
  if (headers && typeof headers === 'object') {
    return Object.entries(headers as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .map(([n, v]) => `${n}: ${Array.isArray(v) ? v.join(', ') : String(v)}`)
      .join('\r\n');
  }
  return '';
}

/** Copies one answer: wraps this response's writeHead, write and end, and hands the copy to
 * `sink` once the response is done. */
export function tapResponse(server: string, req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse, sink: AnswerSink): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const heads: string[] = [];
  const add = (chunk: unknown, encoding?: unknown) => {
    const bytes = bytesOf(chunk, encoding);
    if (!bytes || size >= BODY_LIMIT) return;
    chunks.push(bytes);
    size += bytes.length;
  };
  let sent: Buffer | undefined;
  tapRequest(req, (request) => {
    sent = request.body;
  });
  const r = res as any;
  const writeHead = r.writeHead;
  r.writeHead = function (this: unknown, ...args: unknown[]) {
    for (const arg of args.slice(1)) if (typeof arg !== 'string') heads.push(headerText(arg));
    return writeHead.apply(this, args);
  };
  const write = r.write;
  r.write = function (this: unknown, ...args: unknown[]) {
    add(args[0], args[1]);
    return write.apply(this, args);
  };
  const end = r.end;
  r.end = function (this: unknown, ...args: unknown[]) {
    add(args[0], args[1]);
    return end.apply(this, args);
  };
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    // HTTP/1: the header block exactly as written; HTTP/2: the headers the response holds.
    const written = typeof r._header === 'string' && r._header ? (r._header as string) : '';
    const head = written || [`:status ${res.statusCode}`, headerText(res.getHeaders()), ...heads].filter(Boolean).join('\r\n');
    sink({ server, method: req.method ?? '', target: req.url ?? '', status: res.statusCode, head, body: Buffer.concat(chunks), sent });
  };
  res.once('finish', finish);
  res.once('close', finish);
}

/** The payloads of the server's WebSocket frames in `bytes` (unmasked, as a server sends them). */
export function framePayloads(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const masked = (bytes[at + 1]! & 0x80) !== 0;
    let length = bytes[at + 1]! & 0x7f;
    let start = at + 2;
    if (length === 126) {
      if (start + 2 > bytes.length) break;
      length = bytes.readUInt16BE(start);
      start += 2;
    } else if (length === 127) {
      if (start + 8 > bytes.length) break;
      length = Number(bytes.readBigUInt64BE(start));
      start += 8;
    }
    let payload = bytes.subarray(start + (masked ? 4 : 0), start + (masked ? 4 : 0) + length);
    if (masked) {
      const mask = bytes.subarray(start, start + 4);
      payload = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
    }
    out.push(payload);
    at = start + (masked ? 4 : 0) + length;
  }
  return out;
}

/** Copies what the server writes on an upgraded (WebSocket) connection: the handshake answer and
 * each frame's payload, handed to `sink` when the connection closes. */
export function tapUpgrade(server: string, req: IncomingMessage, socket: Duplex, sink: AnswerSink): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const s = socket as any;
  for (const method of ['write', 'end'] as const) {
    const original = s[method];
    s[method] = function (this: unknown, ...args: unknown[]) {
      const bytes = bytesOf(args[0], args[1]);
      if (bytes && size < BODY_LIMIT) {
        chunks.push(bytes);
        size += bytes.length;
      }
      return original.apply(this, args);
    };
  }
  socket.once('close', () => {
    const all = Buffer.concat(chunks);
    const split = all.indexOf('\r\n\r\n');
    const head = split === -1 ? all.toString('latin1') : all.subarray(0, split).toString('latin1');
    const rest = split === -1 ? Buffer.alloc(0) : all.subarray(split + 4);
    const status = Number(/^HTTP\/1\.\d (\d{3})/.exec(head)?.[1] ?? 0);
    // Frames apart, joined by a newline (a secret cut across two frames is rare, but the raw
    // bytes are kept besides for it); an answer that refused the upgrade is a plain HTTP body.
    const body = status === 101 ? Buffer.concat([...framePayloads(rest).flatMap((p) => [p, Buffer.from('\n')]), Buffer.from('\n'), rest]) : rest;
    sink({ server, method: req.method ?? '', target: req.url ?? '', status, head, body, websocket: status === 101 });
  });
}

function offersWebSocket(req: IncomingMessage): boolean {
  return /\bwebsocket\b/i.test(String(req.headers.upgrade ?? ''));
}

/** Copies every answer of `server` (an http, https or http2 compat server). Listeners go first, so
 * that the wrapping is in place before the gateway writes anything. */
export function tapServer(server: Server | import('node:events').EventEmitter, name: string, sink: AnswerSink, requests?: RequestSink): void {
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (requests && isAdminChange(req)) tapRequest(req, requests);
    tapResponse(name, req, res, sink);
  });
  // Only a WebSocket upgrade stays a raw socket; any other offer is served as a request (above).
  server.prependListener('upgrade', (req: IncomingMessage, socket: Duplex) => {
    if (offersWebSocket(req)) tapUpgrade(name, req, socket, sink);
  });
}
