// What a user's restrictions require of a request before the gateway can admit it: for a user with
// a model list or a dollar limit, its model must be known, and an operation whose cost the gateway
// cannot see (src/operations/costs.ts, `unbounded`) is refused. Token limits alone do not refuse
// those operations: they are counted in tokens the answer reports, and an operation that reports
// none is not counted (README, Users, limits and quotas). Decided on the operation the request matched, never on its path.
import { GatewayError } from '../errors.js';
import type { Operation } from '../operations/match.js';
import type { User } from '../store/types.js';

const hasModelList = (user: Pick<User, 'models'>): boolean => (user.models?.length ?? 0) > 0;

function dollarLimited(user: Pick<User, 'limits'>): boolean {
  const l = user.limits;
  return l?.usdPerDay !== undefined || l?.usdPerMonth !== undefined;
}

/** The model a request will run on: the one it names, else its operation's default when the
 * upstream has one the gateway knows and the request surely names none (a form whose `model` may
 * come after its file names one the gateway cannot see). */
export function effectiveModel(operation: Operation, named: string | undefined, hidden = false): string | undefined {
  if (named !== undefined) return named;
  if (hidden) return undefined;
  const cost = operation.cost;
  return cost.kind === 'tokens' || cost.kind === 'model' ? cost.defaultModel : undefined;
}

/** Throws the refusal for a request whose cost the user's restrictions cannot bound. */
export function checkCostBound(user: Pick<User, 'models' | 'limits'>, operation: Operation, model: string | undefined): void {
  const cost = operation.cost;
  // A batch names its models in its input file, checked line by line (src/relay/batch-input.ts).
  if (cost.kind === 'free' || cost.kind === 'later') return;
  const restricted = hasModelList(user) || dollarLimited(user);
  if (cost.kind === 'unbounded') {
    if (restricted) {
      throw new GatewayError('route_not_allowed', {
        message: `${operation.id} spends in ways this gateway cannot bound (its model or cost is not in the request), so it is not open to keys with a model list or a dollar limit.`,
      });
    }
    return;
  }
  if (model === undefined && restricted) {
    throw new GatewayError('model_not_allowed', {
      param: 'model',
      message:
        'This request names no model the gateway can read (in a form, `model` must come before the file), so it cannot tell which model it runs on or what it costs; keys with a model list or a dollar limit must name one.',
    });
  }
}

/**
 * The WebSocket sessions (`GET /v1/realtime`, `GET /v1/responses`) are not metered: their frames
 * are not read. So they are closed to a user with a dollar limit; a model list needs the model of a
 * realtime session (its `?model=`, fixed for the session), and the Responses socket, whose every
 * `response.create` may name another model, is closed to it too.
 */
export function checkWebSocketBound(user: Pick<User, 'models' | 'limits'>, path: string, model: string | undefined): void {
  const closed = (why: string) => new GatewayError('route_not_allowed', { message: `${path} ${why}` });
  if (dollarLimited(user)) throw closed('is not metered by this gateway, so it is not open to keys with a dollar limit.');
  if (!hasModelList(user)) return;
  if (path !== '/v1/realtime') throw closed('lets each request name its model, so it is not open to keys with a model list.');
  if (model === undefined) {
    throw new GatewayError('model_not_allowed', { param: 'model', message: 'Name the realtime session\'s model (`?model=`): this key has a model list.' });
  }
}
