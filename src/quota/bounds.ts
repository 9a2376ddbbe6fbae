// What a user's restrictions and permissions require of a request before the gateway can admit it,
// by the decision of the operation it matched (src/operations/costs.ts), never by its path:
// - an operation refused unless allowed needs its permission in the user's `allow` list;
// - for a user with a model list or a dollar limit, a request that costs must name its model, and
//   an `unbounded` operation is refused;
// - a thread run (`capped`) must name its model for a user with a model list, and its caps for a
//   user with any token or dollar limit: they are what it is charged;
// - every model the body names elsewhere (the decision's `models`) is checked against the list.
// Token limits alone do not refuse the others: they are counted in the tokens the answer reports.
import { GatewayError } from '../errors.js';
import { modelAllowed } from '../models.js';
import type { Operation } from '../operations/match.js';
import type { User } from '../store/types.js';

const hasModelList = (user: Pick<User, 'models'>): boolean => (user.models?.length ?? 0) > 0;

function dollarLimited(user: Pick<User, 'limits'>): boolean {
  const l = user.limits;
  return l?.usdPerDay !== undefined || l?.usdPerMonth !== undefined;
}

function tokenLimited(user: Pick<User, 'limits'>): boolean {
  const l = user.limits;
  return l?.tpm !== undefined || l?.tokensPerDay !== undefined || l?.tokensPerMonth !== undefined;
}

/** The model a request will run on: the one it names, else its operation's default when the
 * upstream has one the gateway knows and the request surely names none (a form whose `model` may
 * come after its file names one the gateway cannot see). */
export function effectiveModel(operation: Operation, named: string | undefined, hidden = false): string | undefined {
  if (named !== undefined) return named;
  if (hidden) return undefined;
  const cost = operation.cost;
  return cost.kind === 'tokens' || cost.kind === 'model' || cost.kind === 'flat' ? cost.defaultModel : undefined;
}

/** The JSON body as far as the gateway read it: `whole` when it was parsed whole (a body past
 * PARSE_BYTES keeps only its top-level settings, and a form none). */
export interface ReadBody {
  json?: Record<string, unknown>;
  whole: boolean;
}

/** The strings found at a dotted path (`*`: any member of an object or array). */
export function valuesAt(value: unknown, path: readonly string[]): unknown[] {
  if (path.length === 0) return [value];
  if (value === null || typeof value !== 'object') return [];
  const [step, ...rest] = path as [string, ...string[]];
  const members = step === '*' ? Object.values(value) : [(value as Record<string, unknown>)[step]];
  return members.flatMap((member) => (member === undefined ? [] : valuesAt(member, rest)));
}

function checkNestedModels(user: Pick<User, 'models'>, operation: Operation, body: ReadBody): void {
  const paths = operation.cost.models;
  if (!paths || !hasModelList(user)) return;
  if (!body.whole) {
    throw new GatewayError('model_not_allowed', {
      param: 'model',
      message: `${operation.id} names models inside its body, which this gateway reads only in a JSON body of at most 1 MB; this key has a model list.`,
    });
  }
  for (const path of paths) {
    for (const found of valuesAt(body.json, path.split('.'))) {
      if (typeof found !== 'string' || !modelAllowed(user, found)) {
        throw new GatewayError('model_not_allowed', { param: path, message: `The model at \`${path}\` is not allowed for this key.` });
      }
    }
  }
}

/** Throws the refusal for a request the user may not make or whose cost the gateway cannot bound. */
export function checkCostBound(user: Pick<User, 'models' | 'limits' | 'allow'>, operation: Operation, model: string | undefined, body: ReadBody = { whole: false }): void {
  const cost = operation.cost;
  // A batch names its models in its input file, checked line by line (src/relay/batch-input.ts).
  if (cost.kind === 'later') return;
  if (cost.kind === 'free') {
    // Free itself, but it fixes the models later paid work runs on (an eval's graders).
    checkNestedModels(user, operation, body);
    return;
  }
  const restricted = hasModelList(user) || dollarLimited(user);
  if (cost.kind === 'allowed') {
    if (!user.allow?.includes(cost.permission)) {
      throw new GatewayError('route_not_allowed', {
        message: `${operation.id} spends where this gateway cannot see or bound it, so it is open only to keys an admin allowed it (allow: ${cost.permission}).`,
      });
    }
    checkNestedModels(user, operation, body);
    return;
  }
  if (cost.kind === 'unbounded') {
    if (restricted) {
      throw new GatewayError('route_not_allowed', {
        message: `${operation.id} spends in ways this gateway cannot bound (its model or cost is not in the request), so it is not open to keys with a model list or a dollar limit.`,
      });
    }
    return;
  }
  if (cost.kind === 'capped') {
    if (model === undefined && restricted) {
      throw new GatewayError('model_not_allowed', {
        param: 'model',
        message: `A run uses its assistant's model unless the request names one; this key has a model list or a dollar limit, so name \`model\`.`,
      });
    }
    if (restricted || tokenLimited(user)) {
      for (const field of [cost.promptCap, cost.outputCap]) {
        const cap = body.json?.[field];
        if (typeof cap !== 'number' || !Number.isSafeInteger(cap) || cap < 1) {
          throw new GatewayError('invalid_request', {
            param: field,
            message: `A run goes on after its answer: this key has limits, so the run must set \`${cost.promptCap}\` and \`${cost.outputCap}\`, which it is charged.`,
          });
        }
      }
    }
    return;
  }
  // A flat price that no model decides (a container's memory, a video extension's length).
  const needsModel = cost.kind !== 'flat' || cost.defaultModel !== undefined;
  if (needsModel && model === undefined && restricted) {
    throw new GatewayError('model_not_allowed', {
      param: 'model',
      message:
        'This request names no model the gateway can read (in a form, `model` must come before the file), so it cannot tell which model it runs on or what it costs; keys with a model list or a dollar limit must name one.',
    });
  }
  checkNestedModels(user, operation, body);
}

/**
 * The WebSocket sessions (`GET /v1/realtime`, `GET /v1/responses`) are metered response by
 * response (src/relay/ws-session.ts), and the Responses socket checks each `response.create`'s
 * model. A realtime session runs on the model of its `?model=`, so a user with a model list or a
 * dollar limit must name one; a session attached to a call (`?call_id=`) or for transcription
 * (`?intent=`) is spent in ways the gateway does not meter, so it is closed to such users and to
 * users with a token limit.
 */
export function checkWebSocketBound(user: Pick<User, 'models' | 'limits'>, path: string, search: string, model: string | undefined): void {
  if (path !== '/v1/realtime') return;
  const restricted = hasModelList(user) || dollarLimited(user);
  // Not metered, so closed to a token limit too: a call or a transcription-only session would spend it unseen.
  if (!restricted && !tokenLimited(user)) return;
  const query = new URLSearchParams(search);
  if (query.has('call_id') || query.has('intent')) {
    throw new GatewayError('route_not_allowed', {
      message: `${path} with \`call_id\` or \`intent\` is not metered by this gateway, so it is not open to keys with a model list, a token limit or a dollar limit.`,
    });
  }
  if (model === undefined && restricted) {
    throw new GatewayError('model_not_allowed', { param: 'model', message: 'Name the realtime session\'s model (`?model=`): this key has a model list or a dollar limit.' });
  }
}
