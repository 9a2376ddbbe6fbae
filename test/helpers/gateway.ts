// Starts a real gateway on port 0 in this process, with its logs and every answer it sends
// captured for the secret scan, and the secrets it is started with registered there.
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import type { Store } from '../../src/store/types.js';
import { tapServer } from './answer-tap.js';
import { registerConfigSecrets } from './gateway-secrets.js';
import { atFileEnd, captureAdminRequest, captureLogLine, captureTapped } from './log-capture.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface TestGateway {
  app: FastifyInstance;
  url: string;
  /** `url + '/v1'`, the base URL SDKs take. */
  baseUrl: string;
  port: number;
  /** Every log line this gateway wrote, parsed. */
  logs: Array<Record<string, unknown>>;
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  /** Creates a user (with optional fields) and one key; resolves the key. */
  createUserKey(id: string, user?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  /** Environment as `keyrelay serve` would read it (OPENAI_API_KEYS, KEYRELAY_UPSTREAM_URL, ...). */
  env?: Record<string, string | undefined>;
  /** Settings laid over the environment's. */
  config?: Partial<Config>;
  store?: Store;
  /** Where the console's built files are (by default dist/console/). */
  consoleRoot?: string;
  /** The address to listen on (by default 127.0.0.1; `::` for a dual-stack listener). */
  listenHost?: string;
}

export async function startGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const config = loadConfig(
    { KEYRELAY_CONFIG: undefined, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN, LOG_LEVEL: 'info', ...options.env },
    { host: '127.0.0.1', port: 0, ...options.config },
  );
  registerConfigSecrets(config);
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        captureLogLine(line);
        logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  const app = await buildApp(config, { log: createLogger(config.logLevel, sink), store: options.store, consoleRoot: options.consoleRoot });
  await app.listen({ host: options.listenHost ?? '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://127.0.0.1:${port}`;
  tapServer(app.server, `gateway :${port}`, captureTapped, captureAdminRequest);
  const notAtEnd = atFileEnd(() => readOutputs(url, config.adminToken, config.metrics.token));

  async function admin(method: string, path: string, body?: unknown) {
    const res = await fetch(`${url}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  }

  return {
    app,
    url,
    baseUrl: `${url}/v1`,
    port,
    logs,
    admin,
    async createUserKey(id, user = {}) {
      const created = await admin('POST', '/users', { id, ...user });
      if (created.status !== 201) throw new Error(`create user ${id}: ${created.status} ${JSON.stringify(created.json)}`);
      const key = await admin('POST', `/users/${id}/keys`, {});
      if (key.status !== 201) throw new Error(`create key for ${id}: ${key.status}`);
      return key.json.key as string;
    },
    async close() {
      notAtEnd();
      await readOutputs(url, config.adminToken, config.metrics.token);
      await app.close();
    },
  };
}

/**
 * Reads what a gateway keeps and shows on its own (the audit log, the request log, the pool's and
 * the users' views, the metrics) before it closes, so that the secret scan sees those answers too
 * even in a file whose tests never asked. A gateway that does not answer is passed over.
 */
export async function readOutputs(url: string, adminToken: string | undefined, metricsToken: string | undefined): Promise<void> {
  const get = async (path: string, token: string | undefined) => {
    try {
      const res = await fetch(`${url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
    } catch {
      // closed already, or never listening: nothing to read
    }
  };
  await get('/metrics', metricsToken);
  if (!adminToken) return;
  for (const path of ['/admin/audit?limit=1000', '/admin/requests', '/admin/upstreams', '/admin/users']) await get(path, adminToken);
}
