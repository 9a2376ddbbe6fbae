// Which models a user may call. Compiled globs are cached by pattern list: users are read from
// the store on every request, their model lists rarely change.
import { BoundedMap } from './bounded-map.js';
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
