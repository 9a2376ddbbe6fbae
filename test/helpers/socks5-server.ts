// A small SOCKS5 server on loopback (RFC 1928, with RFC 1929 user/password), for the tests: it
// records every CONNECT with the address type the client sent (a name for socks5h://, an address
// for socks5://), resolves names through its own `hosts` table first, and scripts the faults of
// docs/reliability.md, case 18.
import { lookup } from 'node:dns/promises';
import { type Server, type Socket, connect, createServer, isIP } from 'node:net';
import { registerSecret } from './log-capture.js';

export type Socks5Behaviour = 'tunnel' | 'stall-greeting' | 'stall-connect';

export interface Socks5ConnectRecord {
  addressType: 'ipv4' | 'domain' | 'ipv6';
  host: string;
  port: number;
  /** The user name the client authenticated with, if it did. */
  username?: string;
}

export interface TestSocks5Server {
  /** `socks5h://127.0.0.1:port` without credentials; swap the scheme for socks5://. */
  url: string;
  port: number;
  connects: Socks5ConnectRecord[];
  /** Authentications refused (wrong user name or password, or none offered when required). */
  authFailures: number;
  behaviour: Socks5Behaviour;
  cutTunnels(): void;
  /** Resolves once no connection to the proxy is open any more (the client closed them all). */
  whenIdle(): Promise<void>;
  close(): Promise<void>;
}

export interface Socks5ServerOptions {
  auth?: { username: string; password: string };
  hosts?: Record<string, string>;
  behaviour?: Socks5Behaviour;
}

class Closed extends Error {}

async function read(socket: Socket, n: number): Promise<Buffer> {
  for (;;) {
    const chunk = socket.read(n) as Buffer | null;
    if (chunk !== null && chunk.length === n) return chunk;
    if (chunk !== null || socket.destroyed || socket.readableEnded) throw new Closed();
    await new Promise<void>((resolve) => {
      const done = () => {
        socket.off('readable', done).off('close', done).off('end', done);
        resolve();
      };
      socket.once('readable', done).once('close', done).once('end', done);
    });
  }
}

function reply(code: number): Buffer {
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

export async function startSocks5Server(options: Socks5ServerOptions = {}): Promise<TestSocks5Server> {
  if (options.auth) registerSecret(options.auth.password, 'SOCKS5 proxy password');
  const connects: Socks5ConnectRecord[] = [];
  const sockets = new Set<Socket>();
  const idleWaiters: Array<() => boolean> = [];
  const forget = (socket: Socket) => {
    sockets.delete(socket);
    idleWaiters.splice(0, idleWaiters.length, ...idleWaiters.filter((check) => !check()));
  };
  const state: TestSocks5Server = {
    url: '',
    port: 0,
    connects,
    authFailures: 0,
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
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  async function negotiate(client: Socket): Promise<string | undefined> {
    const [version, count = 0] = await read(client, 2);
    if (version !== 0x05) throw new Closed();
    const methods = [...(await read(client, count))];
    if (!options.auth) {
      if (!methods.includes(0x00)) {
        client.end(Buffer.from([0x05, 0xff]));
        throw new Closed();
      }
      client.write(Buffer.from([0x05, 0x00]));
      return undefined;
    }
    if (!methods.includes(0x02)) {
      state.authFailures++;
      client.end(Buffer.from([0x05, 0xff]));
      throw new Closed();
    }
    client.write(Buffer.from([0x05, 0x02]));
    const [, ulen = 0] = await read(client, 2);
    const username = (await read(client, ulen)).toString();
    const [plen = 0] = await read(client, 1);
    const password = (await read(client, plen)).toString();
    if (username !== options.auth.username || password !== options.auth.password) {
      state.authFailures++;
      client.end(Buffer.from([0x01, 0x01]));
      throw new Closed();
    }
    client.write(Buffer.from([0x01, 0x00]));
    return username;
  }

  async function target(client: Socket): Promise<Socks5ConnectRecord> {
    const [, command, , atyp] = await read(client, 4);
    let record: Socks5ConnectRecord;
    if (atyp === 0x01) {
      record = { addressType: 'ipv4', host: [...(await read(client, 4))].join('.'), port: 0 };
    } else if (atyp === 0x04) {
      const bytes = await read(client, 16);
      const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16));
      record = { addressType: 'ipv6', host: groups.join(':'), port: 0 };
    } else if (atyp === 0x03) {
      const [length = 0] = await read(client, 1);
      record = { addressType: 'domain', host: (await read(client, length)).toString(), port: 0 };
    } else {
      client.end(reply(0x08));
      throw new Closed();
    }
    record.port = (await read(client, 2)).readUInt16BE(0);
    if (command !== 0x01) {
      client.end(reply(0x07));
      throw new Closed();
    }
    return record;
  }

  async function serve(client: Socket): Promise<void> {
    // A stalled server reads and drops, so that the client hanging up is noticed.
    if (state.behaviour === 'stall-greeting') {
      client.resume();
      return;
    }
    const username = await negotiate(client);
    const record = await target(client);
    connects.push(username === undefined ? record : { ...record, username });
    if (state.behaviour === 'stall-connect') {
      client.resume();
      return;
    }

    let address = options.hosts?.[record.host] ?? record.host;
    if (isIP(address) === 0) {
      try {
        address = (await lookup(address)).address;
      } catch {
        client.end(reply(0x04));
        return;
      }
    }
    const upstream = connect({ host: address, port: record.port });
    let connected = false;
    sockets.add(upstream);
    upstream.once('close', () => {
      forget(upstream);
      if (connected) client.destroy();
    });
    upstream.on('error', () => {
      if (!connected) client.end(reply(0x05));
    });
    upstream.once('connect', () => {
      connected = true;
      client.write(reply(0x00));
      client.pipe(upstream);
      upstream.pipe(client);
    });
    client.once('close', () => upstream.destroy());
  }

  const server: Server = createServer((client) => {
    sockets.add(client);
    client.once('close', () => forget(client));
    client.on('error', () => client.destroy());
    // A refusal was already written with end(): let it reach the client before the socket closes.
    serve(client).catch(() => {
      if (!client.writableEnded) client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  state.port = typeof address === 'object' && address ? address.port : 0;
  state.url = `socks5h://127.0.0.1:${state.port}`;
  return state;
}
