// The cap on open connections of one process. A connection past it gets a 503
// `server_overloaded` written at once on the socket and is closed, before Node's HTTP parser ever
// sees it, so a flood costs a write and a close per connection, never a wait for its headers.
//
// Node's own `maxConnections` drops the extra connection without a word; the cap is kept here
// instead so that SDKs get a status they retry on (retry-after), and Node's is set a little above
// it as a backstop: the answers need a socket each for a moment, a flood must not take every
// file descriptor of the process.
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import { refuseOnSocket } from './raw-answer.js';
import type { Reading } from './saturation.js';

// Connections past the cap that may be open at once while they get their 503.
const REFUSAL_ROOM = 1000;
// One warning line per this long at most while connections are refused.
const WARN_EVERY_MS = 10_000;

type Listener = (socket: Socket) => void;

/**
 * Puts the cap in front of Node's HTTP connection listener: plain HTTP hands the listener the TCP
 * socket ('connection'), HTTPS the TLS socket once its handshake is done ('secureConnection'), so
 * over TLS the 503 is sent encrypted. Every TCP connection counts, WebSockets and handshakes
 * included. To be called before anything else listens for connections. Returns where the process
 * stands against the cap, for readiness (saturation.ts).
 */
export function capConnections(server: HttpServer | HttpsServer, tls: boolean, maxConnections: number, log: Logger, onRefused: () => void = () => {}): () => Reading {
  const event = tls ? 'secureConnection' : 'connection';
  const nodeListeners = server.listeners(event) as Listener[];
  server.removeAllListeners(event);
  server.maxConnections = maxConnections + REFUSAL_ROOM;

  let open = 0;
  server.on('connection', (socket: Socket) => {
    open += 1;
    socket.once('close', () => (open -= 1));
  });

  let refused = 0;
  let warnedAt = 0;
  const warn = () => {
    const now = Date.now();
    if (now - warnedAt < WARN_EVERY_MS) return;
    warnedAt = now;
    log.warn({ maxConnections, refused }, 'connection limit reached: new connections answered 503 server_overloaded');
    refused = 0;
  };

  server.on(event, (socket: Socket) => {
    if (open <= maxConnections) {
      for (const listener of nodeListeners) listener.call(server, socket);
      return;
    }
    refused += 1;
    onRefused();
    warn();
    refuseOnSocket(
      socket,
      new GatewayError('server_overloaded', {
        message: 'The gateway is at its limit of open connections. Try again later.',
        headers: { 'retry-after': '1' },
      }),
    );
  });

  // `open` counts the probe's own connection: at the limit, the next connection is refused.
  return () => ({ limit: 'connections', current: open, max: maxConnections, reached: open >= maxConnections });
}
