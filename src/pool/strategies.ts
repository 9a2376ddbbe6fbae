// How an upstream picks one of its usable keys. Each strategy sees only the keys selection left
// (usable, allowed for the model, not yet tried by this request), in the upstream's order, and
// keeps its own state between picks. All are deterministic: no randomness, so tests can count.

export const STRATEGIES = ['round-robin', 'weighted', 'least-in-flight', 'rate-aware'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

export interface Candidate {
  /** Position in the upstream's key list: stable across picks. */
  readonly index: number;
  readonly weight: number;
  /** Requests this process has on the key right now. */
  readonly inFlight: number;
  /** Share of the key's rate limit estimated left, 0 to 1 (1 when unknown); see rate-headers.ts. */
  readonly headroom: number;
}

export interface Strategy {
  pick<C extends Candidate>(candidates: readonly C[]): C | undefined;
}

/** The next candidate at or after the cursor, in list order, wrapping around. */
class Rotation {
  private cursor = 0;

  next<C extends Candidate>(candidates: readonly C[]): C | undefined {
    const chosen = candidates.find((c) => c.index >= this.cursor) ?? candidates[0];
    if (chosen) this.cursor = chosen.index + 1;
    return chosen;
  }
}

class RoundRobin implements Strategy {
  private readonly rotation = new Rotation();
  pick<C extends Candidate>(candidates: readonly C[]): C | undefined {
    return this.rotation.next(candidates);
  }
}

/**
 * Smooth weighted round robin as nginx does it (ngx_http_upstream_round_robin.c): each pick adds
 * every candidate's weight to its running score, takes the highest, and takes the total off the
 * winner. Over any run of sum(weights) picks each key gets exactly its share, interleaved rather
 * than in bursts. A key left out of a pick (cooling, tried) keeps its score and neither gains nor loses.
 */
class SmoothWeighted implements Strategy {
  private readonly scores = new Map<number, number>();

  constructor(private readonly weightOf: (c: Candidate) => number = (c) => c.weight) {}

  pick<C extends Candidate>(candidates: readonly C[]): C | undefined {
    let best: C | undefined;
    let bestScore = -Infinity;
    let total = 0;
    for (const c of candidates) {
      const weight = Math.max(0, this.weightOf(c));
      total += weight;
      const score = (this.scores.get(c.index) ?? 0) + weight;
      this.scores.set(c.index, score);
      if (score > bestScore) {
        best = c;
        bestScore = score;
      }
    }
    if (best) this.scores.set(best.index, bestScore - total);
    return best;
  }
}

/** Fewest requests in flight per unit of weight; ties go round robin so equal keys share. */
class LeastInFlight implements Strategy {
  private readonly rotation = new Rotation();

  pick<C extends Candidate>(candidates: readonly C[]): C | undefined {
    let least = Infinity;
    for (const c of candidates) least = Math.min(least, c.inFlight / c.weight);
    return this.rotation.next(candidates.filter((c) => c.inFlight / c.weight === least));
  }
}

/** Below this share left a key still gets a trickle, enough to learn when it recovers. */
const HEADROOM_FLOOR = 0.01;

/**
 * Weighted as above, each weight scaled by the share of the key's rate limit estimated left, so a
 * key that is nearly spent gets proportionally less before it would answer 429. (A key whose
 * window is spent is not a candidate at all: health.ts rests it until the reset.)
 */
function rateAware(): Strategy {
  return new SmoothWeighted((c) => c.weight * Math.max(HEADROOM_FLOOR, Math.min(1, c.headroom)));
}

export function createStrategy(name: StrategyName): Strategy {
  switch (name) {
    case 'round-robin':
      return new RoundRobin();
    case 'weighted':
      return new SmoothWeighted();
    case 'least-in-flight':
      return new LeastInFlight();
    case 'rate-aware':
      return rateAware();
  }
}
