// A real HTTP CONNECT proxy on loopback (the `proxy` package), optionally over TLS and with Basic
// auth, that records every CONNECT. `hosts` is the proxy's own name table: it lets the proxy reach
// names the gateway's resolver does not know (the region-restriction tests). `behaviour` scripts the
// faults of docs/reliability.md, case 17.
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { createProxy } from 'proxy';
import { registerSecret } from './log-capture.js';

export type HttpProxyBehaviour = 'tunnel' | 'refuse-403' | 'refuse-502' | 'stall';

export interface ConnectRecord {
  /** The CONNECT target as the client sent it, such as `api.upstream.test:43210`. */
  target: string;
  /** Whether the request carried the right credentials (always true without `auth`). */
  authorized: boolean;
}

export interface TestHttpProxy {
  /** `http://127.0.0.1:port` (or `https://`), without credentials. */
  url: string;
  port: number;
  connects: ConnectRecord[];
  behaviour: HttpProxyBehaviour;
  /** Destroys every open tunnel, as a proxy restart or a network cut would. */
  cutTunnels(): void;
  /** Resolves once no connection to the proxy is open any more (the client closed them all). */
  whenIdle(): Promise<void>;
  close(): Promise<void>;
}

export interface HttpProxyOptions {
  auth?: { username: string; password: string };
  hosts?: Record<string, string>;
  tls?: { key: string; cert: string };
  behaviour?: HttpProxyBehaviour;
}

type ConnectListener = (this: Server, req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export async function startHttpProxy(options: HttpProxyOptions = {}): Promise<TestHttpProxy> {
  const server: Server = options.tls ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }) : createHttpServer();
  const proxy = createProxy(server);
  if (options.auth) registerSecret(options.auth.password, 'HTTP proxy password');
  const expected = options.auth
    ? `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')}`
    : undefined;
  const isAuthorized = (req: IncomingMessage) => expected === undefined || req.headers['proxy-authorization'] === expected;
  if (expected !== undefined) proxy.authenticate = isAuthorized;

  const connects: ConnectRecord[] = [];
  const sockets = new Set<Duplex>();
  const idleWaiters: Array<() => boolean> = [];
  const forget = (socket: Duplex) => {
    sockets.delete(socket);
    idleWaiters.splice(0, idleWaiters.length, ...idleWaiters.filter((check) => !check()));
  };
  const [tunnel] = server.listeners('connect') as ConnectListener[];
  server.removeAllListeners('connect');

  const state: TestHttpProxy = {
    url: '',
    port: 0,
    connects,
    behaviour: options.behaviour ?? 'tunnel',
    cutTunnels() {
      for (const socket of sockets) socket.destroy();
    },
    whenIdle() {
      return new Promise<void>((resolve) => {
        const check = () => {
          if (sockets.size > 0) return false;
          resolve();
          return true;
        };
        if (!check()) idleWaiters.push(check);
      });
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const target = req.url ?? '';
    connects.push({ target, authorized: isAuthorized(req) });
    sockets.add(socket);
    socket.once('close', () => forget(socket));
    socket.on('error', () => socket.destroy());
    switch (state.behaviour) {
      case 'stall':
        // Read and drop, so that the client hanging up is noticed (http servers allow half-open sockets).
        socket.resume().once('end', () => socket.destroy());
        return;
      case 'refuse-403':
      case 'refuse-502': {
        const status = state.behaviour === 'refuse-403' ? '403 Forbidden' : '502 Bad Gateway';
        socket.end(`HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
        return;
      }
      case 'tunnel': {
        // The proxy's own resolver: rewrite a known name before the `proxy` package dials it.
        const colon = target.lastIndexOf(':');
        const mapped = options.hosts?.[target.slice(0, colon)];
        if (mapped !== undefined) req.url = `${mapped}${target.slice(colon)}`;
        tunnel?.call(server, req, socket, head);
      }
    }
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  state.port = typeof address === 'object' && address ? address.port : 0;
  state.url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${state.port}`;
  return state;
}

/** `http://user:pass@127.0.0.1:port` for a proxy started with `auth`. */
export function withCredentials(url: string, username: string, password: string): string {
  registerSecret(password, 'HTTP proxy password');
  const u = new URL(url);
  u.username = encodeURIComponent(username);
  u.password = encodeURIComponent(password);
  return u.href.replace(/\/$/, '');
}
