// An upstream on a plain `node:net` server, for answers no HTTP server library would send: a
// header section of megabytes, a content-length that lies, a line that never ends, bytes that are
// not HTTP at all. Each request's head (and its body, by content-length) is read, then `answer`
// writes whatever it likes on the socket; the socket is the test's from then on.
import { type Server, type Socket, createServer } from 'node:net';

export interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

export type RawAnswerer = (socket: Socket, request: RawRequest) => void;

export interface RawUpstream {
  /** `http://127.0.0.1:port/v1`. */
  baseUrl: string;
  port: number;
  requests: RawRequest[];
  answer(fn: RawAnswerer): void;
  /** Resolves once no connection to it is open (the gateway let go of every one). */
  whenIdle(): Promise<void>;
  close(): Promise<void>;
}

const HEAD_END = Buffer.from('\r\n\r\n');

export async function startRawUpstream(): Promise<RawUpstream> {
  let answerer: RawAnswerer = (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
  const requests: RawRequest[] = [];
  const sockets = new Set<Socket>();
  const idle: Array<() => void> = [];

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0) for (const resolve of idle.splice(0)) resolve();
    });
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf(HEAD_END);
      if (end === -1) return;
      const [line = '', ...lines] = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const colon = l.indexOf(':');
        if (colon > 0) headers[l.slice(0, colon).trim().toLowerCase()] = l.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      if (buffered.length < end + 4 + length) return;
      socket.off('data', onData);
      const [method = '', path = ''] = line.split(' ');
      const request = { method, path, headers };
      requests.push(request);
      // Whatever else the gateway sends (it should send nothing more) is read and dropped.
      socket.on('data', () => {});
      answerer(socket, request);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    answer(fn) {
      answerer = fn;
    },
    whenIdle() {
      return sockets.size === 0 ? Promise.resolve() : new Promise((resolve) => idle.push(resolve));
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A status line and headers, each `[name, value]` on its own line, then the blank line. */
export function head(status: string, headers: Array<[string, string | number]>): string {
  return `HTTP/1.1 ${status}\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
}
