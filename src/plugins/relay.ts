// The /v1 route in Fastify. Most API requests never reach it: the lane (src/relay/lane.ts) takes
// them first. It serves what the lane leaves (see there) and `inject()`, through the same `handle`.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import { RELAY_METHODS, type RelayRoute } from '../relay/route.js';

export async function relayPlugin(app: FastifyInstance, options: { route: RelayRoute }): Promise<void> {
  const { route } = options;
  // Leave the body stream untouched for the handler.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.addHook('onRequest', async (request) => {
    request.caller = await route.authenticate(request.raw);
  });

  async function handler(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { caller, operation } = request;
    if (!caller) throw new GatewayError('invalid_api_key');
    // Matched by the target hook (src/app.ts) for every /v1 path: its absence is a bug, not a request.
    if (!operation) throw new GatewayError('internal_error', { cause: new Error(`no operation matched for ${request.target.path}`) });
    await route.handle({
      id: request.id,
      req: request.raw,
      res: reply.raw,
      method: request.method,
      target: request.target,
      operation,
      caller,
      observation: request.observation,
      takeOver: () => reply.hijack(),
    });
  }

  app.route({ method: RELAY_METHODS, url: '/v1/*', handler });
}
