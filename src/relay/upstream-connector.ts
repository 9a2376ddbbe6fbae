// Connections to an upstream, direct or inside a proxy's tunnel (`httpSocket`), with each TLS
// session kept for the next connection to the same host and port: a resumed handshake saves the
// certificate's bytes and checks, which count on a long path. undici's own connector caches
// sessions too, but holds them weakly (WeakRef): a garbage collection during an idle minute loses
// them, and that is when a new connection is opened. These are held until replaced (at most
// MAX_SESSIONS hosts, the oldest dropped first).
import type { TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';

const MAX_SESSIONS = 100;

export interface UpstreamConnectorOptions {
  /** Deadline for TCP and TLS (TLS only, inside a tunnel). */
  timeout: number;
  /** Offer HTTP/2 by ALPN. */
  allowH2: boolean;
}

export function upstreamConnector(options: UpstreamConnectorOptions): buildConnector.connector {
  const sessions = new Map<string, Buffer>();
  const plain = buildConnector({ timeout: options.timeout, allowH2: options.allowH2 });
  return (connectOptions, callback) => {
    if (connectOptions.protocol !== 'https:') return plain(connectOptions, callback);
    const key = `${connectOptions.servername || connectOptions.hostname}:${connectOptions.port}`;
    const session = sessions.get(key);
    // undici takes a session only when the connector is built; building one costs next to nothing
    // beside a handshake. Its own cache is off (0): this one replaces it.
    const connect = buildConnector({ timeout: options.timeout, allowH2: options.allowH2, maxCachedSessions: 0, ...(session ? { session } : {}) });
    const socket = (connect as unknown as (o: buildConnector.Options, cb: buildConnector.Callback) => TLSSocket)(connectOptions, callback);
    socket.on('session', (next: Buffer) => {
      sessions.delete(key);
      sessions.set(key, next);
      if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value as string);
    });
  };
}
