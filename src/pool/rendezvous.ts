// Rendezvous (highest-random-weight) hashing: each key scores a request's affinity hash, and the
// key of the highest score takes it (Thaler and Ravishankar, "Using name-based mappings to increase
// hit rates", 1998). A key added or removed moves only the requests whose highest score was its
// own, and when the first key cannot serve, the next by score does: so a conversation keeps one
// key, and its prompt cache there (OpenAI keeps that cache per project, so per pool key).
//
// Weights follow "weighted rendezvous hashing" (Schindelhauer and Schomaker, 2005): the score is
// -w / ln(u) for u uniform in (0, 1), which gives each key a share of w / sum(w) and keeps the
// minimal movement of the plain form.

/** What grouped a request with others (src/relay/affinity.ts). */
export type AffinitySource = 'prompt_cache_key' | 'user' | 'prefix';

export interface Affinity {
  source: AffinitySource;
  /** hashText of what the source said. */
  hash: number;
}

/** FNV-1a over the UTF-16 code units of a string, finished with murmur3's fmix32 so that strings
 * that differ in their last characters still differ in every bit. Unsigned 32 bits. */
export function hashText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix(h);
}

/** murmur3's 32-bit finaliser: a bijection in which each input bit flips each output bit about half the time. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const TWO_32 = 2 ** 32;

/** The score of a key (its `seed`, hashText of its ref) for a request's affinity hash. */
export function rendezvousScore(hash: number, seed: number, weight = 1): number {
  // Mixed again after the xor: hash ^ seed alone would rank keys the same for many hashes.
  const u = (mix((hash ^ Math.imul(seed, 0x9e3779b1)) >>> 0) + 0.5) / TWO_32;
  return -weight / Math.log(u);
}

export interface RendezvousKey {
  readonly seed: number;
  readonly weight: number;
}

/** The candidate of the highest score; ties (2^-32) go to the first. */
export function rendezvousPick<K extends RendezvousKey>(hash: number, keys: readonly K[]): K | undefined {
  let best: K | undefined;
  let bestScore = -Infinity;
  for (const key of keys) {
    const score = rendezvousScore(hash, key.seed, key.weight);
    if (score > bestScore) {
      best = key;
      bestScore = score;
    }
  }
  return best;
}

/** Every candidate, highest score first: the order a request's retries go through. */
export function rendezvousOrder<K extends RendezvousKey>(hash: number, keys: readonly K[]): K[] {
  return keys
    .map((key) => ({ key, score: rendezvousScore(hash, key.seed, key.weight) }))
    .sort((a, b) => b.score - a.score)
    .map((s) => s.key);
}
