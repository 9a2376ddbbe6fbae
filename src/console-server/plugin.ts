// The web console's server side (docs/console.md): sign-in sessions, the CSRF rule, the admin
// API's cookie, /console/api/me, and the built pages. Everything under /console carries the
// security headers of headers.ts, its errors and 404s included.
import type { FastifyInstance } from 'fastify';
import type { Observability } from '../observability/index.js';
import type { Services } from '../services.js';
import { SECURITY_HEADERS, isConsolePath, rawPath } from './headers.js';
import { meRoutes } from './me-routes.js';
import { installSessionHook } from './session-auth.js';
import { sessionRoutes } from './session-routes.js';
import { type StaticOptions, staticRoutes } from './static.js';

export interface ConsoleOptions extends StaticOptions {
  services: Services;
  observability: Observability;
}

/** Installs the console on the root app: after the audit hook, before the admin routes (whose
 * guard reads the session this installs). */
export async function installConsole(app: FastifyInstance, options: ConsoleOptions): Promise<void> {
  const { config, store } = options.services;
  installSessionHook(app, store, config.adminToken);
  app.addHook('onSend', async (request, reply, payload) => {
    if (isConsolePath(rawPath(request.raw.url)) || isConsolePath(request.target?.path ?? '')) reply.headers(SECURITY_HEADERS);
    return payload;
  });
  await app.register(sessionRoutes, { prefix: '/console/api', store, adminToken: config.adminToken, sessionHours: config.console.sessionHours });
  await app.register(meRoutes, { prefix: '/console/api', store, observability: options.observability, maxKeys: config.maxKeysPerUser });
  await app.register(staticRoutes, { root: options.root });
}
