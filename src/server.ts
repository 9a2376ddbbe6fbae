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

const GRACE_MS = 10_000;

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

export async function startServer(config: Config, log: Logger = createLogger(config.logLevel, undefined, loggerOptions(config))): Promise<RunningServer> {
  const app = await buildApp(config, { log });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${port}`;
  describeStart(config, log);
  log.info({ url }, 'keyrelay listening');
  return { app, url, close: () => app.close() };
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
  const server = await startServer(config, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal, graceMs: GRACE_MS }, 'shutting down');
    const timer = setTimeout(() => {
      log.warn('grace period over: exiting');
      process.exit(0);
    }, GRACE_MS);
    timer.unref();
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while closing');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  // A worker hears Ctrl-C from the terminal and the primary's SIGTERM: only the latter counts.
  process.on('SIGINT', () => (cluster.isWorker ? undefined : stop('SIGINT')));
}
