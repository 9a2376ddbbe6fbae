// WebSocket relay for `GET /v1/realtime` and `GET /v1/responses` upgrades. The handshake is
// forwarded with the key swapped, then the two sockets are joined byte for byte: frames are never
// decoded, so every extension and message type passes unchanged.
import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { type Caller, authenticate, bearerToken } from '../auth.js';
import { GatewayError, errorBody } from '../errors.js';
import { modelAllowed } from '../models.js';
import type { Pool } from '../pool/pool.js';
import type { Store } from '../store/types.js';
import { upstreamRequestHeaders } from './headers.js';
import type { Outbound } from './outbound.js';
import { checkTarget } from './path.js';
import { mapUpstreamError } from './upstream-errors.js';

const WS_PATHS = new Set(['/v1/realtime', '/v1/responses']);
// Browsers cannot set headers, so they send the key as a subprotocol (openai-node websocket.ts).
const KEY_PROTOCOL = 'openai-insecure-api-key.';

export interface UpgradeDeps {
  store: Store;
  pool: Pool;
  outbound: Outbound;
  log: Logger;
  newRequestId: () => string;
}

function writeHttpError(socket: Duplex, error: GatewayError, requestId: string): void {
  const body = errorBody(error);
  const head = [
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}`,
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    `x-request-id: ${requestId}`,
    `x-keyrelay-request-id: ${requestId}`,
    'connection: close',
  ];
  for (const [name, value] of Object.entries(error.headers)) head.push(`${name}: ${value}`);
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

/** Splits the offered subprotocols into the key (if the browser form is used) and the rest. */
export function splitProtocols(header: string | undefined): { key?: string; others: string[] } {
  const others: string[] = [];
  let key: string | undefined;
  for (const raw of (header ?? '').split(',')) {
    const protocol = raw.trim();
    if (!protocol) continue;
    if (protocol.startsWith(KEY_PROTOCOL)) key = protocol.slice(KEY_PROTOCOL.length);
    else others.push(protocol);
  }
  return { key, others };
}

function handshakeHead(headers: Record<string, string | string[] | undefined>, requestId: string): string {
  const lines = ['HTTP/1.1 101 Switching Protocols'];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name === 'set-cookie' || name.startsWith('openai-organization') || name === 'openai-project') continue;
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  lines.push(`x-keyrelay-request-id: ${requestId}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

function join(client: Duplex, upstream: Duplex): void {
  const closeBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', closeBoth).on('close', closeBoth);
  upstream.on('error', closeBoth).on('close', closeBoth);
  client.pipe(upstream);
  upstream.pipe(client);
}

export function createUpgradeHandler(deps: UpgradeDeps) {
  return async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const requestId = deps.newRequestId();
    socket.on('error', () => socket.destroy());
    let caller: Caller | undefined;
    try {
      const target = checkTarget(req.url ?? '');
      if (!WS_PATHS.has(target.path) || req.method !== 'GET') {
        throw new GatewayError('unknown_url', { message: `No WebSocket route at ${target.path}.` });
      }
      const protocols = splitProtocols(req.headers['sec-websocket-protocol']);
      caller = await authenticate(deps.store, bearerToken(req) ?? protocols.key);
      const model = new URLSearchParams(target.search).get('model') ?? undefined;
      if (model !== undefined && !modelAllowed(caller.user, model)) throw new GatewayError('model_not_allowed');
      const choice = deps.pool.select(model);
      if (!choice) throw new GatewayError('no_upstream_key_available', { headers: { 'retry-after': '60' } });

      const headers = upstreamRequestHeaders(req.headers, choice.key, undefined);
      delete headers['accept-encoding'];
      delete headers['sec-websocket-protocol'];
      if (protocols.others.length > 0) headers['sec-websocket-protocol'] = protocols.others.join(', ');

      const controller = new AbortController();
      const abort = () => controller.abort();
      socket.once('close', abort);
      // `origin` is read by Agent at run time; undici's UpgradeOptions type leaves it out.
      const options: Dispatcher.UpgradeOptions & { origin: string } = {
        origin: choice.upstream.origin,
        path: choice.upstream.basePath + target.path.slice(3) + target.search,
        method: 'GET',
        headers,
        protocol: 'websocket',
        signal: controller.signal,
      };
      const upgraded = await deps.outbound.dispatcherFor(choice).upgrade(options);
      socket.off('close', abort);
      if (socket.destroyed) {
        upgraded.socket.destroy();
        return;
      }
      socket.write(handshakeHead(upgraded.headers, requestId));
      if (head.length > 0) upgraded.socket.write(head);
      join(socket, upgraded.socket);
      deps.log.info(
        { requestId, userId: caller.user.id, keyId: caller.key.id, poolKeyId: choice.key.id, route: target.path, model },
        'websocket opened',
      );
      upgraded.socket.once('close', () => deps.log.info({ requestId }, 'websocket closed'));
    } catch (err) {
      if (socket.destroyed) return;
      const error = err instanceof GatewayError ? err : mapUpstreamError(err);
      deps.log.info({ requestId, userId: caller?.user.id, status: error.status, code: error.code }, 'websocket refused');
      writeHttpError(socket, error, requestId);
    }
  };
}
