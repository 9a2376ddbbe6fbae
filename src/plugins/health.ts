// Liveness and readiness (README, "Logs, usage reports and metrics"; docs/connections.md,
// "Readiness under load"). Liveness is only that the process answers: a saturated process is alive.
import type { FastifyInstance } from 'fastify';
import type { Saturation } from '../inbound/saturation.js';
import type { Services } from '../services.js';

export interface HealthOptions extends Services {
  isClosing: () => boolean;
  saturation: Saturation;
}

export async function healthPlugin(app: FastifyInstance, services: HealthOptions): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const store = await services.store.ping().catch(() => false);
    // A pool whose every key is cooling or disabled cannot serve: out of the load balancer until one recovers.
    const keys = services.pool.usableCount() > 0;
    const closing = services.isClosing();
    // Read after the store's ping: the counts are those of the moment of the answer.
    const saturated = services.saturation.check().map(({ limit, current, max }) => ({ limit, current, max }));
    const ready = store && keys && !closing && saturated.length === 0;
    reply.code(ready ? 200 : 503);
    return { status: ready ? 'ready' : 'not_ready', store, poolKeys: keys, closing, saturated };
  });
}
