// Under a dollar limit a model without a price is refused (src/quota/gate.ts): it would spend
// money no limit sees. The admin API and the command line say so when such a limit is set, naming
// the allowed models that have no price, so that the operator learns it before the user does.
import { globMatcher } from '../glob.js';
import type { User } from '../store/types.js';
import type { PriceTable } from './prices.js';

const GLOB = /[*?]/;

/** Warnings for a user whose dollar limit would refuse some of their allowed models; none otherwise. */
export function unpricedModelWarnings(user: Pick<User, 'models' | 'limits'>, prices: PriceTable): string[] {
  const limit = user.limits?.usdPerDay !== undefined ? 'usdPerDay' : user.limits?.usdPerMonth !== undefined ? 'usdPerMonth' : undefined;
  if (limit === undefined) return [];
  const models = user.models ?? [];
  if (models.length === 0) {
    return [`${limit} is set and the user may use any model: requests for a model without a price (not in the price table nor under prices: in the settings) will be refused.`];
  }
  const named = prices.names();
  const unpriced = models.filter((pattern) =>
    GLOB.test(pattern) ? !named.some(globMatcher(pattern)) && prices.lookup(pattern) === undefined : prices.lookup(pattern) === undefined,
  );
  if (unpriced.length === 0) return [];
  return [
    `${limit} is set, and these allowed models have no price, so their requests will be refused: ${unpriced.map((m) => JSON.stringify(m)).join(', ')}. Add them under prices: in the settings.`,
  ];
}
