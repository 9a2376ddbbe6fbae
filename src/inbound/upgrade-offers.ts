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

/** The request head as the client sent it, less the Upgrade header; Node decoded it as latin1. */
function headWithoutUpgrade(req: IncomingMessage): Buffer {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.toLowerCase() !== 'upgrade') head += `${name}: ${raw[i + 1]}\r\n`;
  }
  return Buffer.from(`${head}\r\n`, 'latin1');
}

/** The server's 'upgrade' listener: WebSocket offers go to `onWebSocket`, any other is served as plain HTTP. */
export function webSocketUpgradesOnly(server: http.Server, onWebSocket: UpgradeListener): UpgradeListener {
  return (req, socket, head) => {
    if (offersWebSocket(req)) return onWebSocket(req, socket, head);
    if (!nodeConnectionListener) {
      socket.destroy();
      return;
    }
    socket.unshift(head.length > 0 ? Buffer.concat([headWithoutUpgrade(req), head]) : headWithoutUpgrade(req));
    nodeConnectionListener.call(server, socket);
  };
}
