// Liveness and readiness (README, "Logs, usage reports and metrics").
import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.js';

export async function healthPlugin(app: FastifyInstance, services: Services & { isClosing: () => boolean }): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const store = await services.store.ping().catch(() => false);
    // A pool whose every key is cooling or disabled cannot serve: out of the load balancer until one recovers.
    const keys = services.pool.usableCount() > 0;
    const closing = services.isClosing();
    const ready = store && keys && !closing;
    reply.code(ready ? 200 : 503);
    return { status: ready ? 'ready' : 'not_ready', store, poolKeys: keys, closing };
  });
}
