// The lane: API requests (/v1/...) go from Node's HTTP server straight to the relay, without
// Fastify's per-request objects, hooks and router. It does what those hooks do for such a request,
// in the same order: a request id, the target check and the operation match (src/operations), the
// observation (one record per request), a CORS preflight answered there (src/inbound/cors.ts), the
// gateway key, then the relay (route.ts: the same `handle` the Fastify route of src/plugins/relay.ts calls).
//
// Whatever it does not take goes to Fastify, which answers it as before: other paths, other
// methods, a target that fails the check (answered there with the same 400), an overlong one, and
// every request once the shutdown has begun.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Caller } from '../auth.js';
import { GatewayError } from '../errors.js';
import type { Cors } from '../inbound/cors.js';
import type { Observability } from '../observability/index.js';
import { Observation } from '../observability/observation.js';
import { matchOperation } from '../operations/match.js';
import { type Target, checkTarget } from './path.js';
import { writeError } from './respond.js';
import { RELAY_METHODS, type RelayRoute } from './route.js';

const METHODS = new Set(RELAY_METHODS);
// Fastify's router refuses a wildcard longer than its maxParamLength (2048): those go to it.
const MAX_TARGET = 2000;

export interface LaneOptions {
  route: RelayRoute;
  observability: Observability;
  log: Logger;
  cors: Cors;
  isClosing(): boolean;
}

/** Returns the lane: true when it took the request, false to leave it to Fastify. */
export function createLane(options: LaneOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { route, observability, log, cors, isClosing } = options;

  function takes(req: IncomingMessage): Target | undefined {
    const url = req.url ?? '';
    if (!url.startsWith('/v1/') || url.length > MAX_TARGET) return undefined;
    if (!METHODS.has(req.method ?? '') || isClosing()) return undefined;
    try {
      return checkTarget(url);
    } catch {
      return undefined;
    }
  }

  async function run(req: IncomingMessage, res: ServerResponse, target: Target): Promise<void> {
    const id = randomUUID();
    const method = req.method as string;
    const operation = matchOperation(method, target.path);
    const observation = new Observation(observability, id, method, req.url as string, req.headers);
    observation.matched(target.path, operation);
    let caller: Caller | undefined;
    let bytesOut = 0;
    res.once('close', () =>
      observation.closed(() => ({
        status: res.statusCode,
        userId: caller?.user.id,
        keyId: caller?.key.id,
        bytesOut,
        aborted: !res.writableFinished,
      })),
    );
    let takenOver = false;
    try {
      // Before and without a key: a browser's preflight carries none, and is never relayed.
      const preflight = cors.preflight(req);
      if (preflight) {
        res.writeHead(204, { ...preflight, 'x-request-id': id, 'x-keyrelay-request-id': id });
        res.end();
        return;
      }
      caller = await route.authenticate(req);
      await route.handle({ id, req, res, method, target, operation, caller, observation, takeOver: () => (takenOver = true) });
    } catch (err) {
      const error = err instanceof GatewayError ? err : new GatewayError('internal_error', { cause: err });
      // Other errors are in the request's own line; a bug needs its stack on a line of its own.
      if (error.code === 'internal_error' || takenOver) log.error({ err: error.cause ?? error, requestId: id }, 'request failed');
      if (!takenOver) observation.failed(error);
      bytesOut = writeError(res, error, id);
    }
  }

  return (req, res) => {
    const target = takes(req);
    if (target === undefined) return false;
    run(req, res, target).catch((err: unknown) => {
      // run() answers every error itself; one escaping it is a bug, not a reason to stop serving.
      log.error({ err }, 'request failed outside the relay');
      if (!res.destroyed) res.destroy();
    });
    return true;
  };
}
