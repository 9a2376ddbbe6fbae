// Sends bytes exactly as written over a plain socket and returns what came back, for requests an
// HTTP client would refuse to send (absolute-form targets, raw `..`, smuggling attempts) or would
// never send so slowly.
import { type Socket, connect } from 'node:net';
import { connect as connectTls } from 'node:tls';

export interface RawAnswer {
  raw: string;
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The server closed the connection after answering. */
  closed: boolean;
}

/** The first answer in `raw` (status 0 when there is none). */
export function parseAnswer(raw: string, closed: boolean): RawAnswer {
  const [head = '', ...rest] = raw.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { raw, status: Number(statusLine.split(' ')[1] ?? 0), headers, body: rest.join('\r\n\r\n'), closed };
}

export function rawRequest(port: number, bytes: string | Buffer, waitMs = 2000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => {
      closed = true;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseAnswer(Buffer.concat(chunks).toString('utf8'), closed));
    });
    socket.write(bytes);
  });
}

/** A connection held open by the test, written to at its own pace. */
export interface RawConnection {
  socket: Socket;
  /** What the server has sent so far. */
  received(): string;
  /** Resolves when the connection is gone, by whichever side, with what the server sent. */
  closed: Promise<RawAnswer>;
}

/** `tls`: over TLS, any certificate taken; resolves once the handshake is done. */
export function openConnection(port: number, options: { tls?: boolean } = {}): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = options.tls ? connectTls({ port, host: '127.0.0.1', rejectUnauthorized: false }) : connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let ended = false;
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => {
      ended = true;
    });
    const received = () => Buffer.concat(chunks).toString('utf8');
    const closed = new Promise<RawAnswer>((done) => socket.on('close', () => done(parseAnswer(received(), ended))));
    // A reset by the server is a close like any other here.
    socket.on('error', () => socket.destroy());
    socket.once(options.tls ? 'secureConnect' : 'connect', () => resolve({ socket, received, closed }));
    socket.once('error', reject);
  });
}
