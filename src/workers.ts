// Several processes sharing one port (node:cluster), to use every core. The primary only forks,
// restarts a worker that dies, and passes signals on; workers are ordinary gateways sharing
// state through Redis (settings refuse workers > 1 without it).
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';

const RESTART_DELAY_MS = 1000;

export function runPrimary(workers: number, log: Logger): void {
  let stopping = false;
  const fork = (): Worker => cluster.fork();
  for (let i = 0; i < workers; i++) fork();
  log.info({ workers }, 'keyrelay primary started its workers');

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    log.error({ pid: worker.process.pid, code, signal }, 'worker died: starting another');
    setTimeout(fork, RESTART_DELAY_MS).unref();
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping the workers');
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Each worker reads the settings file again itself (src/server.ts, reloadOnHangup).
  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
  });
}
