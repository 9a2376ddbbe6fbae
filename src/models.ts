// Which models a user may call. Compiled globs are cached by pattern list: users are read from
// the store on every request, their model lists rarely change.
import { BoundedMap } from './bounded-map.js';
import { GatewayError } from './errors.js';
import { compileGlobs } from './glob.js';
import type { User } from './store/types.js';

const cache = new BoundedMap<string, (model: string) => boolean>(1000);

export function modelAllowed(user: Pick<User, 'models'>, model: string): boolean {
  if (!user.models || user.models.length === 0) return true;
  const cacheKey = user.models.join('\n');
  let test = cache.get(cacheKey);
  if (!test) {
    test = compileGlobs(user.models) ?? (() => true);
    cache.set(cacheKey, test);
  }
  return test(model);
}

/**
 * The 403 for a model the user may not use. It names the model and the user's own patterns: the
 * caller holds the user's key, so the list is theirs to know, and it saves a round trip to the admin.
 */
export function modelRefused(user: Pick<User, 'models'>, model: string, param = 'model'): GatewayError {
  const patterns = (user.models ?? []).map((pattern) => JSON.stringify(pattern)).join(', ');
  return new GatewayError('model_not_allowed', {
    param,
    message: `This key may not use the model ${JSON.stringify(model)}. The models it may use: ${patterns} (* matches any characters).`,
  });
}
