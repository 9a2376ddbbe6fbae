// What a user's restrictions require of a request before the gateway can admit it: its model must
// be known where a model list or a dollar limit needs it, and an operation whose cost the gateway
// cannot see (src/operations/costs.ts, `unbounded`) is not open to a user whose spending is
// limited at all. Decided on the operation the request matched, never on its path.
import { GatewayError } from '../errors.js';
import type { Operation } from '../operations/match.js';
import type { User } from '../store/types.js';

const hasModelList = (user: Pick<User, 'models'>): boolean => (user.models?.length ?? 0) > 0;

function dollarLimited(user: Pick<User, 'limits'>): boolean {
  const l = user.limits;
  return l?.usdPerDay !== undefined || l?.usdPerMonth !== undefined;
}

function spendLimited(user: Pick<User, 'limits'>): boolean {
  const l = user.limits;
  return dollarLimited(user) || l?.tokensPerDay !== undefined || l?.tokensPerMonth !== undefined || l?.tpm !== undefined;
}

/** The model a request will run on: the one it names, else its operation's default when the
 * upstream has one the gateway knows. */
export function effectiveModel(operation: Operation, named: string | undefined): string | undefined {
  if (named !== undefined) return named;
  const cost = operation.cost;
  return cost.kind === 'tokens' || cost.kind === 'model' ? cost.defaultModel : undefined;
}

/** Throws the refusal for a request whose cost the user's restrictions cannot bound. */
export function checkCostBound(user: Pick<User, 'models' | 'limits'>, operation: Operation, model: string | undefined): void {
  const cost = operation.cost;
  if (cost.kind === 'free') return;
  if (cost.kind === 'unbounded') {
    if (hasModelList(user) || spendLimited(user)) {
      throw new GatewayError('route_not_allowed', {
        message: `${operation.id} spends in ways this gateway cannot meter (its model or usage is not in the request or its answer), so it is not open to keys with a model list or a token or dollar limit.`,
      });
    }
    return;
  }
  if (model === undefined && (hasModelList(user) || dollarLimited(user))) {
    throw new GatewayError('model_not_allowed', {
      param: 'model',
      message:
        'This request names no model, so the gateway cannot tell which model it runs on or what it costs; keys with a model list or a dollar limit must name one (in a form, before the file).',
    });
  }
}
