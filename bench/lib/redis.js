// A redis-server of the harness's own, on a free port of 127.0.0.1, keeping nothing on disk
// (bench/chaos.js restarts one on its port with an append-only file, so that its data survives).
import { closeSync, openSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort, spawnTracked } from './children.js';

/** Sends one command and resolves the first line of the reply (enough for PING and DBSIZE). */
export function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    socket.setTimeout(2000, () => socket.destroy(new Error('redis did not answer')));
    socket.once('error', reject);
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      const end = reply.indexOf('\r\n');
      if (end === -1) return;
      socket.end();
      const line = reply.slice(0, end);
      if (line.startsWith('-')) reject(new Error(line.slice(1)));
      else resolve(line.slice(1));
    });
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`);
  });
}

/**
 * Starts redis-server, or resolves {unavailable} with the reason when it cannot. `port`: that one
 * rather than a free one; `persist`: an append-only file in `dir`, read again by the next start.
 */
export async function startRedis(dir, { port: fixedPort, persist = false } = {}) {
  const port = fixedPort ?? (await freePort());
  const log = openSync(join(dir, 'redis.log'), 'a');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', persist ? 'yes' : 'no', '--dir', dir, '--daemonize', 'no'];
  const child = spawnTracked('redis-server', args, { stdio: ['ignore', log, log] });
  closeSync(log); // the child has its own
  const failed = new Promise((resolve) => {
    child.once('error', (err) => resolve(`redis-server could not start: ${err.message}`));
    child.once('exit', (code) => resolve(`redis-server exited with ${code} (see ${join(dir, 'redis.log')})`));
  });
  for (let i = 0; i < 100; i++) {
    const outcome = await Promise.race([failed, redisCommand(port, 'PING').catch(() => undefined)]);
    if (outcome === 'PONG') return { child, port, url: `redis://127.0.0.1:${port}` };
    if (typeof outcome === 'string') return { unavailable: outcome };
    await delay(50);
  }
  child.kill('SIGKILL');
  return { unavailable: 'redis-server did not answer PING within 5 s' };
}
