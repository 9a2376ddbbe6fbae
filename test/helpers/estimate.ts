// The worst case the relay would reserve for a POST of `json` to `route` (the path below /v1):
// matched to its operation and estimated as src/relay/route.ts does.
import { matchOperation } from '../../src/operations/match.js';
import { factsOf } from '../../src/relay/body.js';
import { effectiveModel } from '../../src/quota/bounds.js';
import { type Estimate, estimateRequest } from '../../src/quota/estimate.js';

export function estimateAt(route: string, json: Record<string, unknown>, defaultMaxOutput: number): Estimate {
  const operation = matchOperation('POST', `/v1${route}`);
  const facts = factsOf(json);
  return estimateRequest(operation.cost, effectiveModel(operation, facts.model), json, facts, defaultMaxOutput);
}
