// For instruments that count what one keyrelay process does per request (bench/instructions.js,
// bench/gc-starts.js): the process, started under a wrapper or with flags of their own, and a
// fixed number of requests rather than a fixed time.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { freePort, spawnTracked, stop } from './children.js';
import { benchUser, keyrelayEnv, startUpstream, waitHealthy } from './targets.js';
import { requestSpec } from './workloads.js';

/**
 * `node bin/keyrelay.js serve` of `checkout`, run as `command ...prefix <script> serve` (`prefix`
 * ends with node's own flags), with a fake upstream of its own, one pool key, and its output in
 * `<dir>/<name>.log`; resolves once it answers its health route within `healthMs` and has a
 * benchmark user. `close()` stops it and its upstream.
 */
export async function startCountedKeyrelay({ name, checkout, dir, command = process.execPath, prefix = [], env = {}, healthMs = 60_000 }) {
  const upstream = await startUpstream();
  const port = await freePort();
  const poolKey = `sk-bench-${randomBytes(16).toString('hex')}`;
  const adminToken = randomBytes(24).toString('base64url');
  const settings = join(dir, 'keyrelay.yaml');
  writeFileSync(settings, '# the benchmark configures keyrelay through the environment only\n');
  const logFile = join(dir, `${name}.log`);
  const fd = openSync(logFile, 'w');
  const child = spawnTracked(command, [...prefix, join(checkout, 'bin/keyrelay.js'), 'serve'], {
    cwd: checkout,
    stdio: ['ignore', fd, fd],
    env: keyrelayEnv({ port, settings, upstream, poolKey, adminToken }, env),
  });
  closeSync(fd);
  const close = async () => {
    await stop(child, 10_000);
    await stop(upstream.child);
  };
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(child, origin, logFile, healthMs);
    const authorization = `Bearer ${await benchUser(origin, adminToken, name)}`;
    return { child, origin, authorization, logFile, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Sends `count` requests of `workload`, `concurrency` at a time; throws on any answer but a 200. */
export async function sendRequests({ origin, authorization, workload, count, concurrency }) {
  const dispatcher = new Agent({ connections: concurrency });
  const { path, body } = requestSpec({ origin, authorization }, workload);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      const res = await request(`${origin}${path}`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body,
        dispatcher,
      });
      await res.body.arrayBuffer();
      if (res.statusCode !== 200) throw new Error(`${origin}: answered ${res.statusCode}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    await dispatcher.close();
  }
}
