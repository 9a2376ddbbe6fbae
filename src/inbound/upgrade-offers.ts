// Only `Upgrade: websocket` is a WebSocket. Node 20's HTTP server gives every request that offers
// an upgrade (`Connection: upgrade` and any `Upgrade:`) to the 'upgrade' listener once there is
// one, and never to the request handler: so `curl --http2`, which offers h2c on every plain-text
// request, got the WebSocket handler's 404. An offer the server does not take is to be ignored
// (RFC 9110 section 7.8): the request is an ordinary one.
//
// Node 20 has no way to decline an upgrade (`shouldUpgradeCallback` came in Node 24.9), so a
// declined one is handed back to Node's HTTP connection handling as if the connection were new:
// the request's head is put back in front of the bytes still unread, less its Upgrade header, and
// Node's parser reads it again. The request then goes through the lane or Fastify, body,
// keep-alive, clocks and all, like any other; the connection still counts once against the cap.
import * as http from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

// Node's own connection handler (what `http.createServer` and `https.createServer` attach to every
// connection). Not in the typings, but exported by `node:http` since Node 0.x.
type ConnectionListener = (this: http.Server, socket: Duplex) => void;
const nodeConnectionListener = (http as unknown as { _connectionListener?: ConnectionListener })._connectionListener;

/** The upgrade offered includes `websocket` (RFC 6455 4.2.1: case-insensitive). */
export function offersWebSocket(req: IncomingMessage): boolean {
  const offer = req.headers.upgrade;
  return offer !== undefined && offer.split(',').some((protocol) => protocol.trim().toLowerCase() === 'websocket');
}

/**
 * The request head as the client sent it, less the upgrade offer (`Upgrade`, `HTTP2-Settings`, the
 * `upgrade` token of `Connection`); Node decoded it as latin1. With `close`, the connection ends
 * with this request's answer: requests pipelined behind an offer would each be handed back to Node
 * again, and their answers queue behind each other for ever. The client sends them again on a new
 * connection, as it does whenever a server closes one.
 */
function headWithoutUpgrade(req: IncomingMessage, close: boolean): Buffer {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (name === 'upgrade' || name === 'http2-settings') continue;
    if (name === 'connection') {
      const kept = (raw[i + 1] as string).split(',').map((t) => t.trim()).filter((t) => t !== '' && !/^(upgrade|http2-settings)$/i.test(t));
      if (!close && kept.length > 0) head += `${raw[i]}: ${kept.join(', ')}\r\n`;
      continue;
    }
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return Buffer.from(`${head}${close ? 'Connection: close\r\n' : ''}\r\n`, 'latin1');
}

/** Bytes after the request's own body came with it: requests pipelined behind the offer. */
function pipelined(req: IncomingMessage, head: Buffer): boolean {
  if (head.length === 0) return false;
  if (req.headers['transfer-encoding'] !== undefined) return true;
  return head.length > (Number(req.headers['content-length']) || 0);
}

/** The server's 'upgrade' listener: WebSocket offers go to `onWebSocket`, any other is served as plain HTTP. */
export function webSocketUpgradesOnly(server: http.Server, onWebSocket: UpgradeListener): UpgradeListener {
  return (req, socket, head) => {
    if (offersWebSocket(req)) return onWebSocket(req, socket, head);
    if (!nodeConnectionListener) {
      socket.destroy();
      return;
    }
    const close = pipelined(req, head);
    // What is pipelined behind the request's own body is not read: the connection closes first.
    const body = close && req.headers['transfer-encoding'] === undefined ? head.subarray(0, Number(req.headers['content-length']) || 0) : head;
    const rebuilt = headWithoutUpgrade(req, close);
    socket.unshift(body.length > 0 ? Buffer.concat([rebuilt, body]) : rebuilt);
    nodeConnectionListener.call(server, socket);
  };
}
