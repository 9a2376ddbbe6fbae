// The targets, each started once per run and kept for all rounds:
//   direct            (A) the fake upstream itself
//   bare              (B) bench/bare-relay.js
//   keyrelay-memory   (C) keyrelay with the in-memory store
//   keyrelay-redis    (D) keyrelay with Redis
//   keyrelay-workers      keyrelay with KEYRELAY_WORKERS=2, where that setting exists
//   peer              (E) a peer gateway, where one is installed
//   baseline-memory, baseline-redis   another checkout of keyrelay (--baseline DIR), built, so that
//                     a change is measured against the code before it in the same run
// A target that cannot run is kept as {status: 'unavailable', reason}, so that the table says why.
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { exited, forkReady, freePort, rememberDescendant, spawnTracked, stop } from './children.js';
import { inspectorUrls } from './gc.js';
import { processTree } from './proc.js';
import { redisCommand } from './redis.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const TARGETS = [
  { id: 'direct', label: 'direct (A)' },
  { id: 'bare', label: 'bare relay (B)' },
  { id: 'keyrelay-memory', label: 'keyrelay memory (C)' },
  { id: 'keyrelay-redis', label: 'keyrelay Redis (D)' },
  { id: 'keyrelay-workers', label: 'keyrelay 2 workers' },
  { id: 'peer', label: 'peer gateway (E)' },
  { id: 'baseline-memory', label: 'baseline memory' },
  { id: 'baseline-redis', label: 'baseline Redis' },
];
const labelOf = (id) => TARGETS.find((t) => t.id === id)?.label ?? id;

/** Limits on every dimension (every field of src/store/types.ts Limits; test/bench-smoke.test.ts
 * holds them to it), checked on every request, never reached in a run; each within what the admin
 * API takes (src/quota/amounts.ts: dollars at most 1e9). */
export const BENCH_LIMITS = {
  rpm: 10_000_000,
  tpm: 1e11,
  tokensPerDay: 1e13,
  tokensPerMonth: 1e14,
  usdPerDay: 1e9,
  usdPerMonth: 1e9,
  maxConcurrent: 1_000_000,
};

const PROXY_AND_KEYRELAY_VARS = /^(https?_proxy|all_proxy|no_proxy|redis_url|redis_cluster_nodes|openai_.*|keyrelay_.*|host|port|log_level)$/i;

/** This environment without anything that could send loopback traffic elsewhere or configure keyrelay. */
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) if (!PROXY_AND_KEYRELAY_VARS.test(name)) env[name] = value;
  return { ...env, ...extra };
}

/** The users of the `users` workload: per-user state then is not always hot. */
export const USER_COUNT = 100;

export const unavailable = (id, reason) => ({ id, label: labelOf(id), status: 'unavailable', reason });

const ok = (id, fields) => ({ id, label: labelOf(id), status: 'ok', ...fields });

export async function startUpstream({ inspect = false } = {}) {
  const { child, port } = await forkReady(join(ROOT, 'bench/upstream.js'), [], { env: cleanEnv(), inspect });
  return { child, port, url: `http://127.0.0.1:${port}` };
}

// Every running target can start a fresh copy of itself (`fresh`), closed with `close`: the memory
// workload measures a process that has served nothing else, and collects its garbage through the
// inspector the copy runs with (`inspectorUrls`; bench/lib/gc.js).

export function directTarget(upstream, poolKey) {
  return ok('direct', {
    origin: upstream.url,
    authorization: `Bearer ${poolKey}`,
    // No users here: the same key 100 times, so that the workload runs the same way.
    userAuthorizations: Array(USER_COUNT).fill(`Bearer ${poolKey}`),
    pids: () => [upstream.child.pid],
    inspectorUrls: () => inspectorUrls(upstream.child.stderrText),
    close: () => stop(upstream.child),
    fresh: async () => directTarget(await startUpstream({ inspect: true }), poolKey),
  });
}

export async function startBare(upstream, poolKey, { inspect = false } = {}) {
  const { child, port } = await forkReady(join(ROOT, 'bench/bare-relay.js'), [], {
    env: cleanEnv({ UPSTREAM_URL: upstream.url, UPSTREAM_KEY: poolKey }),
    inspect,
  });
  return ok('bare', {
    origin: `http://127.0.0.1:${port}`,
    authorization: 'Bearer sk-bench-client-key',
    userAuthorizations: Array(USER_COUNT).fill('Bearer sk-bench-client-key'),
    pids: () => [child.pid],
    inspectorUrls: () => inspectorUrls(child.stderrText),
    close: () => stop(child),
    fresh: () => startBare(upstream, poolKey, { inspect: true }),
  });
}

function tail(file, lines = 5) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join(' | ');
  } catch {
    return '';
  }
}

export async function waitHealthy(child, origin, logFile, timeoutMs = 15_000) {
  let gone = false;
  void exited(child).then(() => (gone = true));
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (gone) throw new Error(`exited with ${child.exitCode ?? child.signalCode}: ${tail(logFile)}`);
    const res = await fetch(`${origin}/healthz`).catch(() => undefined);
    if (res) {
      await res.arrayBuffer();
      if (res.ok) return;
    }
    await delay(50);
  }
  throw new Error(`no answer on /healthz within ${timeoutMs / 1000} s: ${tail(logFile)}`);
}

export async function admin(origin, token, method, path, body) {
  let res;
  // A 503 is retried for a moment: with inbound.maxEventLoopDelayMs (bench/overload.js), a process
  // that has just started may refuse its first requests while it warms up.
  for (let attempt = 1; ; attempt++) {
    res = await fetch(`${origin}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status !== 503 || attempt === 20) break;
    await res.arrayBuffer();
    await delay(100);
  }
  const text = await res.text();
  if (res.status !== (method === 'POST' ? 201 : 200)) throw new Error(`${method} /admin${path}: ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

/** A user with BENCH_LIMITS and one key; throws unless keyrelay kept every limit as given. */
export async function benchUser(origin, token, userId) {
  const created = await admin(origin, token, 'POST', '/users', { id: userId, name: 'benchmark', limits: BENCH_LIMITS });
  const limits = created.limits ?? created.user?.limits;
  for (const [kind, value] of Object.entries(BENCH_LIMITS)) {
    if (limits?.[kind] !== value) throw new Error(`user ${userId}: limit ${kind} is ${limits?.[kind]}, not ${value}`);
  }
  const { key } = await admin(origin, token, 'POST', `/users/${userId}/keys`, { name: 'benchmark' });
  return key;
}

/** The environment of a benchmarked keyrelay: one pool key, the admin token, info-level logs, and
 * the settings file (empty: everything comes from here), plus `extra`. */
export function keyrelayEnv({ port, settings, upstream, poolKey, adminToken }, extra = {}) {
  return cleanEnv({
    HOST: '127.0.0.1',
    PORT: String(port),
    KEYRELAY_CONFIG: settings,
    KEYRELAY_UPSTREAM_URL: `${upstream.url}/v1`,
    OPENAI_API_KEYS: poolKey,
    KEYRELAY_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: 'info',
    ...extra,
  });
}

/**
 * Starts `node bin/keyrelay.js serve` as a user would, info-level logs to a file, and creates a
 * user with BENCH_LIMITS and one key through the admin API. `instance` names a fresh copy, which
 * runs with an inspector (its URL, like anything on stderr, goes to the log file).
 */
export async function startKeyrelay(options) {
  const { id, upstream, poolKey, adminToken, dir, env = {}, instance, checkout = ROOT } = options;
  const inspect = instance === undefined ? [] : ['--inspect=127.0.0.1:0'];
  const name = instance === undefined ? id : `${id}-${instance}`;
  const port = await freePort();
  const logFile = join(dir, `${name}.log`);
  const emptySettings = join(dir, 'keyrelay.yaml');
  writeFileSync(emptySettings, '# the benchmark configures keyrelay through the environment only\n');
  const fd = openSync(logFile, 'w');
  const child = spawnTracked(process.execPath, [...inspect, join(checkout, 'bin/keyrelay.js'), 'serve'], {
    cwd: checkout,
    stdio: ['ignore', fd, fd],
    env: keyrelayEnv({ port, settings: emptySettings, upstream, poolKey, adminToken }, env),
  });
  closeSync(fd); // the child has its own
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(child, origin, logFile);
    const key = await benchUser(origin, adminToken, `bench-${name}`);
    const userKeys = [];
    // The users workload's (a fresh copy, for memory, has none): created ten at a time.
    const users = instance === undefined ? USER_COUNT : 0;
    for (let i = 0; i < users; i += 10) {
      const batch = Array.from({ length: Math.min(10, users - i) }, (_, j) => benchUser(origin, adminToken, `bench-${name}-user-${i + j}`));
      userKeys.push(...(await Promise.all(batch)));
    }
    const pids = () => {
      const tree = processTree(child.pid);
      for (const pid of tree.slice(1)) rememberDescendant(pid);
      return tree;
    };
    return ok(id, {
      origin,
      authorization: `Bearer ${key}`,
      userAuthorizations: userKeys.map((k) => `Bearer ${k}`),
      pids,
      child,
      logFile,
      secrets: [poolKey, adminToken, key, ...userKeys],
      inspectorUrls: () => inspectorUrls(readFileSync(logFile, 'utf8')),
      close: () => stop(child),
      fresh: (n) => startKeyrelay({ ...options, instance: `fresh-${n}` }),
    });
  } catch (err) {
    await stop(child);
    return unavailable(id, `keyrelay did not start: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** (D): keyrelay given REDIS_URL; unavailable unless the users and keys it creates land in that Redis. */
export async function startKeyrelayRedis(options, redis, id = 'keyrelay-redis') {
  if (redis.unavailable) return unavailable(id, redis.unavailable);
  const before = Number(await redisCommand(redis.port, 'DBSIZE'));
  // Each target its own database, so that two keyrelays on one redis-server never share a user.
  const database = id === 'keyrelay-redis' ? 0 : 2;
  const target = await startKeyrelay({ ...options, id, env: { REDIS_URL: `${redis.url}/${database}` } });
  if (target.status !== 'ok') return target;
  const after = Number(await redisCommand(redis.port, 'DBSIZE'));
  if (after > before || database !== 0) return { ...target, redisPid: redis.child.pid };
  await stop(target.child);
  return unavailable(id, 'REDIS_URL is not used yet: keyrelay started with it, but creating a user and a key wrote nothing to Redis');
}

/** The same keyrelay targets from another checkout (its dist/ built), for a before-and-after in one run. */
export async function startBaseline(options, redis, checkout) {
  if (!existsSync(join(checkout, 'dist/server.js'))) {
    const reason = `${checkout} has no dist/: build it first (npx tsc -p tsconfig.build.json there)`;
    return [unavailable('baseline-memory', reason), unavailable('baseline-redis', reason)];
  }
  const memory = await startKeyrelay({ ...options, checkout, id: 'baseline-memory' });
  const onRedis = await startKeyrelayRedis({ ...options, checkout }, redis, 'baseline-redis');
  return [memory, onRedis];
}

/**
 * Two workers sharing the port (KEYRELAY_WORKERS=2): on Redis when (D) runs, so that users and
 * quotas are shared, else on the in-memory store. Unavailable unless two worker processes appear.
 */
export async function startKeyrelayWorkers(options, redisTarget, redis) {
  const store = redisTarget.status === 'ok' ? 'redis' : 'memory';
  const env = { KEYRELAY_WORKERS: '2', ...(store === 'redis' ? { REDIS_URL: redis.url } : {}) };
  const target = await startKeyrelay({ ...options, id: 'keyrelay-workers', env });
  if (target.status !== 'ok') return target;
  for (let i = 0; i < 40; i++) {
    const workers = target.pids().length - 1;
    if (workers >= 2) return { ...target, store, workers, ...(store === 'redis' ? { redisPid: redis.child.pid } : {}) };
    await delay(50);
  }
  await stop(target.child);
  return unavailable('keyrelay-workers', 'KEYRELAY_WORKERS=2 started a single process: keyrelay has no worker setting yet');
}

/** (E): only what is already installed here; the harness installs nothing. */
export function peerTarget() {
  const portkey = join(ROOT, 'node_modules/@portkey-ai/gateway');
  if (existsSync(portkey)) return unavailable('peer', 'the Portkey gateway is installed, but the harness does not start it yet');
  return unavailable('peer', 'no peer gateway is installed on this machine (the harness installs none)');
}
