// What a relayed request is charged when it settles (README.md, Users, limits and quotas). The
// answer's own usage when it reported one. An upstream error, or no answer at all, is the
// upstream's failure: the reservation is released in full, the request not counted. A client that
// went away is charged as OpenAI bills it, and always counts as a request (its rpm slot is kept):
//   - before the upstream had all of the request (an upload cut off): no tokens;
//   - a call that is not streamed: OpenAI generates it to its end whoever reads it, so its worst
//     case, the prompt plus its output cap, marked estimated;
//   - a stream: OpenAI stops once the gateway hangs up in turn, so its prompt and what streamed,
//     marked estimated.
// Work that goes on after its answer (a thread run) is charged its worst case, its caps, once the
// upstream took it; a price per call (Estimate.flatMicros) is added by the gate to whatever is charged.
import type { Estimate } from '../quota/estimate.js';
import type { RelayOutcome } from './attempts.js';
import type { Measured, UsageTap } from './usage-tap.js';

const NOTHING: Measured = { usage: { input: 0, cachedInput: 0, output: 0 }, estimated: false };

/** The usage to settle the request with; undefined releases its reservation in full. */
export function chargeFor(result: RelayOutcome, tap: UsageTap, estimate: Estimate, streamed: boolean): Measured | undefined {
  const measured = tap.measure(() => estimate.promptTokens);
  if (estimate.chargeWorstCase) {
    const took = result.outcome === 'client_aborted' ? result.reachedUpstream : measured !== undefined;
    if (!took) return result.outcome === 'client_aborted' ? NOTHING : undefined;
    return { usage: { input: estimate.promptTokens, cachedInput: 0, output: estimate.maxOutputTokens }, estimated: true };
  }
  if (result.outcome !== 'client_aborted') return measured && !estimate.metered ? NOTHING : measured;
  if (!estimate.metered || !result.reachedUpstream) return NOTHING;
  if (measured && !measured.estimated) return measured; // the usage came before the client left
  if (streamed) return measured ?? { usage: { input: estimate.promptTokens, cachedInput: 0, output: 0 }, estimated: true };
  return { usage: { input: estimate.promptTokens, cachedInput: 0, output: estimate.maxOutputTokens }, estimated: true };
}
