// What a relayed request is charged when it settles (README.md, Users, limits and quotas). The
// answer's own usage when it reported one. An upstream error, or no answer at all, is the
// upstream's failure: the reservation is released in full, the request not counted. A client that
// went away is charged as OpenAI bills it, and always counts as a request (its rpm slot is kept):
//   - before the upstream had all of the request (an upload cut off): no tokens;
//   - a call that is not streamed: OpenAI generates it to its end whoever reads it, so its worst
//     case, the prompt plus its output cap, marked estimated;
//   - a stream: OpenAI stops once the gateway hangs up in turn, so its prompt and what streamed,
//     marked estimated.
// Units billed besides tokens (docs/prices.md): speech characters as the request counts them;
// images and audio seconds as the answer shows them (its usage, its `data` items, its `duration`),
// else at the request's worst case, marked estimated. An answer that reports no usage where it
// may not (audio bytes, a transcript as plain text) is charged its request's worst case.
// Work that goes on after its answer (a thread run) is charged its worst case, its caps, once the
// upstream took it; a price per call (Estimate.flatMicros) is added by the gate to whatever is charged.
import type { Estimate } from '../quota/estimate.js';
import { type TokenUsage, totalTokens } from '../quota/usage.js';
import type { AnswerUnits } from './answer-units.js';
import type { RelayOutcome } from './attempts.js';
import type { Measured, UsageTap } from './usage-tap.js';

const NOTHING: Measured = { usage: { input: 0, cachedInput: 0, output: 0 }, estimated: false };

/** The usage to settle the request with; undefined releases its reservation in full. */
export function chargeFor(result: RelayOutcome, tap: UsageTap, estimate: Estimate, streamed: boolean, answer?: AnswerUnits): Measured | undefined {
  const measured = tokensFor(result, tap, estimate, streamed);
  return measured === undefined || measured === NOTHING ? measured : withUnits(measured, estimate, answer);
}

function tokensFor(result: RelayOutcome, tap: UsageTap, estimate: Estimate, streamed: boolean): Measured | undefined {
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
  return worst(estimate);
}

const worst = (estimate: Estimate): Measured => ({ usage: { input: estimate.promptTokens, cachedInput: 0, output: estimate.maxOutputTokens }, estimated: true });

function silentWorst(estimate: Estimate): Measured {
  const charged = worst(estimate);
  if (estimate.silent === 'audio') charged.usage.audioInput = charged.usage.input;
  if (estimate.silent === 'speech') charged.usage.audioOutput = charged.usage.output;
  return charged;
}

function withUnits(measured: Measured, estimate: Estimate, answer: AnswerUnits | undefined): Measured {
  const units = estimate.units;
  if (!estimate.silent && units === undefined) return measured;
  // No usage reported by an answer that may not report it: the request's worst case.
  const base = estimate.silent && measured.estimated ? silentWorst(estimate) : measured;
  const usage: TokenUsage = { ...base.usage };
  // A worst case of no tokens at all (whisper-1 bills none) leaves only its units to estimate.
  let estimated = base.estimated && (base === measured || totalTokens(base.usage) > 0);
  if (units?.characters !== undefined) usage.characters = units.characters;
  if (units?.images !== undefined && usage.images === undefined) {
    const shown = answer?.images();
    usage.images = shown ?? units.images;
    if (shown === undefined) estimated = true;
  }
  if (units?.seconds !== undefined && usage.seconds === undefined) {
    const shown = answer?.seconds();
    usage.seconds = shown ?? units.seconds;
    if (shown === undefined) estimated = true;
  }
  return { usage, estimated };
}
