// A TCP relay between one store and the test's redis-server, standing for that process's network
// path: paused, its bytes wait in the sockets' buffers (to that process, Redis is frozen: its
// commands time out, and run once the link resumes); cut, every connection drops and no new one
// is taken (the process is gone, as far as Redis can tell). The other stores keep their own links.
import { type Server, type Socket, connect, createServer } from 'node:net';

export interface RedisLink {
  url: string;
  pause(): void;
  resume(): void;
  /** Drops every connection and refuses new ones, for good. */
  cut(): Promise<void>;
}

export async function startRedisLink(redisPort: number): Promise<RedisLink> {
  const pairs = new Set<[Socket, Socket]>();
  // Bytes held back while paused, per direction, sent in order on resume.
  const held: Array<{ to: Socket; chunk: Buffer }> = [];
  let paused = false;
  const forward = (to: Socket) => (chunk: Buffer) => {
    if (paused) held.push({ to, chunk });
    else if (!to.destroyed) to.write(chunk);
  };
  const server: Server = createServer((client) => {
    const upstream = connect(redisPort, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.on('data', forward(upstream));
    upstream.on('data', forward(client));
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${port}`,
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      for (const { to, chunk } of held.splice(0)) if (!to.destroyed) to.write(chunk);
    },
    async cut() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
      held.length = 0;
      await closed;
    },
  };
}
