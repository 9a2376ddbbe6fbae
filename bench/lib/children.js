// Every process the harness starts is registered here, so that all of them are stopped on the way
// out: at the end, on an error, on Ctrl-C, and (SIGKILL, synchronously) on any other exit.
import { fork, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { startTimeOf } from './proc.js';

/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();
/** Processes found below our children (cluster workers), with their start time to recognise them. */
const descendants = new Map();

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

const running = (child) => child.exitCode === null && child.signalCode === null;

/**
 * Starts a node script with IPC and resolves once it says {ready, port}. With `inspect`, it runs
 * with an inspector on a free port, and what it writes to stderr is kept in `stderrText`.
 */
export async function forkReady(script, args, { inspect = false, ...options } = {}) {
  const child = track(
    fork(script, args, {
      stdio: ['ignore', 'inherit', inspect ? 'pipe' : 'inherit', 'ipc'],
      ...(inspect ? { execArgv: ['--inspect=127.0.0.1:0'] } : {}),
      ...options,
    }),
  );
  child.stderrText = '';
  child.stderr?.on('data', (chunk) => (child.stderrText += chunk.toString('utf8')));
  const port = await new Promise((resolve, reject) => {
    child.once('message', (m) => (m && m.ready ? resolve(m.port) : reject(new Error(`${script}: unexpected message`))));
    child.once('exit', (code, signal) => reject(new Error(`${script} exited (${signal ?? code}) before it was ready`)));
    child.once('error', reject);
  });
  return { child, port };
}

/** Spawns a program whose output goes to `fd` (a log file). */
export function spawnTracked(command, args, options) {
  return track(spawn(command, args, options));
}

/** Forks a script with IPC and nothing else (the load generator). */
export function forkTracked(script) {
  return track(fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
}

export function rememberDescendant(pid) {
  if (!descendants.has(pid)) descendants.set(pid, startTimeOf(pid));
}

/** A free TCP port on 127.0.0.1, for programs that must be told their port up front. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

export function exited(child) {
  if (!running(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(child, graceMs = 3000) {
  if (!running(child)) return;
  child.kill('SIGTERM');
  const timer = delay(graceMs).then(() => 'late');
  if ((await Promise.race([exited(child), timer])) === 'late') child.kill('SIGKILL');
  await exited(child);
}

function killDescendants() {
  for (const [pid, startTime] of descendants) {
    // Only the very process we saw: a pid may have been reused since.
    if (startTimeOf(pid) === startTime && startTime !== undefined) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  descendants.clear();
}

export async function stopAll() {
  await Promise.all([...children].map((child) => stop(child)));
  killDescendants();
}

export function killAllNow() {
  for (const child of children) if (running(child)) child.kill('SIGKILL');
  killDescendants();
}
