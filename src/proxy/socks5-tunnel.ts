// SOCKS5 tunnels (RFC 1928, with RFC 1929 user/password authentication). socks5h:// sends the
// upstream's name for the proxy to resolve; socks5:// resolves it here and sends the address.
//
// Why not undici's Socks5ProxyAgent (7.30): it refuses socks5h:// URLs and always sends the name
// (no local resolution for socks5://), its handshake and CONNECT waits are fixed 5 s timers that
// reject with code-less errors and leave the socket to the proxy open, a proxy that closes during
// the handshake is noticed only by that timer, and its per-origin pools ignore the agent's options.
// Reading with `socket.read(n)` keeps the socket paused, so no byte after the reply is lost before
// undici takes the socket over.
import { lookup } from 'node:dns/promises';
import { Socket, connect, isIP } from 'node:net';
import { ProxyError } from './errors.js';
import type { Tunnel, TunnelTarget } from './tunnel.js';
import type { ProxyEndpoint } from './url.js';

const VERSION = 0x05;
const NO_AUTH = 0x00;
const USER_PASS = 0x02;
const NO_ACCEPTABLE = 0xff;
const CMD_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

// RFC 1928 section 6.
const REPLIES: Record<number, string> = {
  1: 'general SOCKS server failure',
  2: 'connection not allowed by ruleset',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

class ClosedDuringHandshake extends Error {
  readonly code = 'ERR_PROXY_CLOSED';
}

/** Resolves exactly `n` bytes, waiting for them without switching the socket to flowing mode. */
async function readExactly(socket: Socket, n: number): Promise<Buffer> {
  for (;;) {
    const chunk = socket.read(n) as Buffer | null;
    if (chunk !== null) {
      if (chunk.length < n) throw new ClosedDuringHandshake('the proxy closed the connection');
      return chunk;
    }
    if (socket.destroyed || socket.readableEnded) throw new ClosedDuringHandshake('the proxy closed the connection');
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        socket.off('readable', done).off('end', done).off('close', done).off('error', fail);
        resolve();
      };
      const fail = (err: Error) => {
        socket.off('readable', done).off('end', done).off('close', done).off('error', fail);
        reject(err);
      };
      socket.once('readable', done).once('end', done).once('close', done).once('error', fail);
    });
  }
}

function addressOf(host: string): Buffer {
  switch (isIP(host)) {
    case 4:
      return Buffer.from([ATYP_IPV4, ...host.split('.').map(Number)]);
    case 6: {
      const bytes = Buffer.alloc(17);
      bytes[0] = ATYP_IPV6;
      expandIpv6(host).forEach((group, i) => bytes.writeUInt16BE(group, 1 + i * 2));
      return bytes;
    }
    default: {
      const name = Buffer.from(host);
      if (name.length > 255) throw new Error('host name longer than 255 bytes');
      return Buffer.concat([Buffer.from([ATYP_DOMAIN, name.length]), name]);
    }
  }
}

function expandIpv6(address: string): number[] {
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const [a = 0, b = 0, c = 0, d = 0] = v4[1].split('.').map(Number);
    text = `${text.slice(0, -v4[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16));
}

export class Socks5Tunnel implements Tunnel {
  constructor(private readonly proxy: ProxyEndpoint) {}

  async open(target: TunnelTarget, signal: AbortSignal): Promise<Socket> {
    // socks5://: the gateway resolves the name; a failure here is the upstream's, not the proxy's.
    const host = this.proxy.kind === 'socks5' && isIP(target.host) === 0 ? (await lookup(target.host)).address : target.host;
    signal.throwIfAborted();
    const socket = connect({ host: this.proxy.hostname, port: this.proxy.port });
    // Errors are read where they matter (below, then by undici); this one keeps a late one from
    // becoming an uncaught exception while the socket changes hands.
    socket.on('error', () => {});
    const onAbort = () => socket.destroy(signal.reason instanceof Error ? signal.reason : undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve).once('error', reject);
      }).catch((err: unknown) => {
        throw signal.aborted ? err : new ProxyError('unreachable', this.proxy, 'could not connect', { cause: err });
      });
      socket.setNoDelay(true).setKeepAlive(true, 60_000);
      await this.handshake(socket, host, target.port);
      return socket;
    } catch (err) {
      socket.destroy();
      if (err instanceof ProxyError) throw err;
      if (signal.aborted && signal.reason instanceof Error) throw signal.reason;
      throw new ProxyError('protocol', this.proxy, `SOCKS5 handshake failed`, { cause: err });
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async handshake(socket: Socket, host: string, port: number): Promise<void> {
    const { username, password } = this.proxy;
    const methods = username === undefined ? [NO_AUTH] : [NO_AUTH, USER_PASS];
    socket.write(Buffer.from([VERSION, methods.length, ...methods]));
    const [version, method] = await readExactly(socket, 2);
    if (version !== VERSION) throw new ProxyError('protocol', this.proxy, 'not a SOCKS5 server');
    if (method === NO_ACCEPTABLE) throw new ProxyError('auth', this.proxy, 'accepts none of the offered authentication methods');
    if (method === USER_PASS && username !== undefined) {
      const user = Buffer.from(username);
      const pass = Buffer.from(password ?? '');
      socket.write(Buffer.concat([Buffer.from([0x01, user.length]), user, Buffer.from([pass.length]), pass]));
      const [, status] = await readExactly(socket, 2);
      if (status !== 0x00) throw new ProxyError('auth', this.proxy, 'refused the user name and password');
    } else if (method !== NO_AUTH) {
      throw new ProxyError('protocol', this.proxy, `chose authentication method ${method} that was not offered`);
    }

    const portBytes = Buffer.alloc(2);
    portBytes.writeUInt16BE(port);
    socket.write(Buffer.concat([Buffer.from([VERSION, CMD_CONNECT, 0x00]), addressOf(host), portBytes]));
    const [replyVersion, reply, , atyp] = await readExactly(socket, 4);
    if (replyVersion !== VERSION) throw new ProxyError('protocol', this.proxy, 'not a SOCKS5 reply');
    if (reply !== 0x00) {
      throw new ProxyError('refused', this.proxy, `refused CONNECT ${host}:${port}: ${REPLIES[reply ?? -1] ?? `reply ${reply}`}`);
    }
    // The bound address is of no use here, but it must be read off the socket.
    if (atyp === ATYP_IPV4) await readExactly(socket, 4 + 2);
    else if (atyp === ATYP_IPV6) await readExactly(socket, 16 + 2);
    else if (atyp === ATYP_DOMAIN) {
      const [length = 0] = await readExactly(socket, 1);
      await readExactly(socket, length + 2);
    } else throw new ProxyError('protocol', this.proxy, `unknown address type ${atyp} in the reply`);
  }

  async close(): Promise<void> {}
}
