// The only side-effecting entry: reads the settings, builds the app, listens, and shuts down
// gracefully on SIGTERM/SIGINT.
import cluster from 'node:cluster';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { createLogger, loggerOptions } from './logger.js';
import { runPrimary } from './workers.js';
import { proxyPlan } from './proxy/plan.js';

export interface RunningServer {
  app: FastifyInstance;
  /** `http://127.0.0.1:8080` */
  url: string;
  close(): Promise<void>;
}

// After the grace period: time for ended streams to settle their reservations and close.
const SETTLE_MS = 2_000;
// Keep-alive connections that fall idle during the shutdown are closed this often.
const IDLE_SWEEP_MS = 100;

function describeStart(config: Config, log: Logger): void {
  if (!config.redis.url && !config.redis.clusterNodes) {
    log.warn('using the in-memory store: one process only, users and counters are lost on restart (set REDIS_URL to keep them)');
  }
  if (!config.adminToken) {
    log.info('the admin API is disabled: set KEYRELAY_ADMIN_TOKEN (16 characters or more) to enable /admin');
  }
  for (const upstream of config.upstreams) {
    log.info({ upstream: upstream.id, baseUrl: upstream.baseUrl, keys: upstream.keys.map((k) => `${k.id} (…${k.key.slice(-4)})`) }, 'upstream');
    if (upstream.keys.length === 0) log.warn({ upstream: upstream.id }, 'this upstream has no keys: set OPENAI_API_KEYS or list keys in the settings file');
  }
  // Which egress each upstream and pool key uses, passwords masked (src/proxy/url.ts).
  for (const line of proxyPlan(config)) {
    const { source, describe } = line.route;
    if (line.poolKeyId === undefined) log.info({ upstream: line.upstream, proxy: describe, source }, 'upstream egress');
    else log.info({ upstream: line.upstream, poolKeyId: line.poolKeyId, proxy: describe, source }, 'pool key egress');
  }
}

/**
 * What a new gateway lacks before it can relay a request, as the commands that give it: the last
 * start-up lines, so that they are the ones a person sees. Nothing when pool keys and the admin
 * token are both set.
 */
export function nextSteps(config: Config): string[] {
  const noKeys = config.upstreams.every((upstream) => upstream.keys.length === 0);
  const noAdmin = !config.adminToken;
  if (!noKeys && !noAdmin) return [];
  const missing = [noKeys ? 'OPENAI_API_KEYS=sk-…' : '', noAdmin ? 'KEYRELAY_ADMIN_TOKEN=$(openssl rand -hex 24)' : ''].filter(Boolean);
  return [
    `next: start again with ${missing.join(' and ')} set (export them, then npm start)`,
    'next: then, with the same KEYRELAY_ADMIN_TOKEN in your shell, issue a key: node bin/keyrelay.js users create alice && node bin/keyrelay.js keys create alice',
  ];
}

export async function startServer(config: Config, log: Logger = createLogger(config.logLevel, undefined, loggerOptions(config))): Promise<RunningServer> {
  const app = await buildApp(config, { log });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${port}`;
  describeStart(config, log);
  log.info({ url }, 'keyrelay listening');
  for (const step of nextSteps(config)) log.info(step);
  return { app, url, close: () => app.close() };
}

/**
 * SIGTERM (docs/reliability.md, cases 37-39): readiness turns false and the port stops taking connections at
 * once; requests in flight may finish within the grace period, idle keep-alive connections close
 * as they fall idle; at the end of the grace period (or at a second signal) open streams get a
 * last SSE error event and WebSockets close, their reservations settle, and the process exits 0.
 * If something still hangs SETTLE_MS later, it exits anyway.
 */
export function gracefulShutdown(server: RunningServer, graceMs: number, log: Logger): (signal: string) => Promise<void> {
  let stopping = false;
  let graceOver: (() => void) | undefined;
  return async (signal) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: ending the grace period now');
      graceOver?.();
      return;
    }
    stopping = true;
    log.info({ signal, graceMs }, 'shutting down: no new requests, waiting for those in flight');
    const { app } = server;
    const sweep = setInterval(() => app.server.closeIdleConnections(), IDLE_SWEEP_MS);
    const endGrace = () => {
      graceOver = undefined;
      clearTimeout(graceTimer);
      const interrupted = app.interruptStreams();
      if (interrupted > 0) log.warn({ interrupted }, 'grace period over: open streams ended');
      setTimeout(() => {
        log.error('still not closed: exiting');
        process.exit(0);
      }, SETTLE_MS).unref();
    };
    graceOver = endGrace;
    const graceTimer = setTimeout(endGrace, graceMs);
    graceTimer.unref();
    try {
      await server.close();
      clearInterval(sweep);
      log.info('shut down');
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'error while closing');
      process.exit(1);
    }
  };
}

/**
 * SIGHUP: the settings (file and environment) are read again and their upstreams and pool keys
 * applied, with the same no-drop rule as a run-time change (src/pool/pool.ts): requests running on
 * a key that left finish on it. Other settings (listen address, store, limits …) need a restart.
 * Settings that do not load are refused with the message naming the setting; the running ones stay.
 */
export function reloadOnHangup(server: RunningServer, log: Logger, load: () => Config = () => loadConfig()): () => void {
  return () => {
    let next: Config;
    try {
      next = load();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      log.error({ reason: err.message }, 'settings reload refused: the running settings stay');
      return;
    }
    server.app.applyPoolSettings(next);
    log.info({ upstreams: next.upstreams.map((u) => `${u.id} (${u.keys.length} keys)`) }, 'settings reloaded: upstreams and pool keys applied; other settings take a restart');
  };
}

/** `keyrelay serve`: runs until a signal, then closes within the grace period and exits 0. */
export async function serve(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`keyrelay: invalid settings: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, undefined, loggerOptions(config));
  if (config.workers > 1 && cluster.isPrimary) {
    runPrimary(config.workers, log);
    return;
  }
  let server: RunningServer;
  try {
    server = await startServer(config, log);
  } catch (err) {
    // What the store holds can make the settings wrong too: a KEYRELAY_SECRET that does not open it.
    if (err instanceof ConfigError) {
      process.stderr.write(`keyrelay: invalid settings: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const shutdown = gracefulShutdown(server, config.shutdownGraceMs, log);
  const stop = (signal: string) => void shutdown(signal);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', reloadOnHangup(server, log));
  // A worker hears Ctrl-C from the terminal and the primary's SIGTERM: only the latter counts.
  process.on('SIGINT', () => (cluster.isWorker ? undefined : stop('SIGINT')));
}
