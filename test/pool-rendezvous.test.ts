// Rendezvous hashing (src/pool/rendezvous.ts) and the pool's use of it: the same affinity finds the
// same key, a key added or removed moves only its own share, weights set the shares, and a key
// that cannot serve hands its requests to the next by rank. Plain numbers, no sockets.
import { describe, expect, it } from 'vitest';
import { Pool, type PoolSettings } from '../src/pool/pool.js';
import { type Affinity, hashText, rendezvousOrder, rendezvousPick } from '../src/pool/rendezvous.js';

const T0 = 1_700_000_000_000;
const HASHES = Array.from({ length: 20_000 }, (_, i) => hashText(`conversation ${i}`));

const key = (id: string, weight = 1) => ({ id, seed: hashText(`main/${id}`), weight });
const owners = (keys: ReturnType<typeof key>[]) => HASHES.map((h) => rendezvousPick(h, keys)?.id);
const share = (picks: Array<string | undefined>, id: string) => picks.filter((p) => p === id).length / picks.length;

describe('rendezvousPick', () => {
  const four = ['a', 'b', 'c', 'd'].map((id) => key(id));

  it('is stable: the same hash and keys give the same key, in whatever order the keys are listed', () => {
    const first = owners(four);
    expect(owners(four)).toEqual(first);
    expect(owners([...four].reverse())).toEqual(first);
  });

  it('spreads equal keys evenly', () => {
    const picks = owners(four);
    for (const id of ['a', 'b', 'c', 'd']) expect(share(picks, id)).toBeCloseTo(0.25, 1);
  });

  it('a key added takes about its share, and only from the others: no request moves between old keys', () => {
    const before = owners(four);
    const after = owners([...four, key('e')]);
    let moved = 0;
    for (let i = 0; i < HASHES.length; i++) {
      if (after[i] === before[i]) continue;
      moved++;
      expect(after[i]).toBe('e');
    }
    expect(moved / HASHES.length).toBeCloseTo(0.2, 1);
  });

  it('a key removed hands on only its own requests, spread over the others', () => {
    const before = owners(four);
    const after = owners(four.filter((k) => k.id !== 'b'));
    const movedTo = new Map<string, number>();
    for (let i = 0; i < HASHES.length; i++) {
      if (before[i] !== 'b') expect(after[i]).toBe(before[i]);
      else movedTo.set(after[i] as string, (movedTo.get(after[i] as string) ?? 0) + 1);
    }
    expect([...movedTo.keys()].sort()).toEqual(['a', 'c', 'd']);
    for (const n of movedTo.values()) expect(n / (HASHES.length * 0.25)).toBeCloseTo(1 / 3, 1);
  });

  it('weights set the shares', () => {
    const picks = owners([key('a', 1), key('b', 1), key('c', 2)]);
    expect(share(picks, 'a')).toBeCloseTo(0.25, 1);
    expect(share(picks, 'b')).toBeCloseTo(0.25, 1);
    expect(share(picks, 'c')).toBeCloseTo(0.5, 1);
  });

  it('a key whose weight grows only takes requests; the others keep theirs among themselves', () => {
    const before = owners([key('a'), key('b'), key('c')]);
    const after = owners([key('a'), key('b'), key('c', 3)]);
    for (let i = 0; i < HASHES.length; i++) if (after[i] !== before[i]) expect(after[i]).toBe('c');
    expect(share(after, 'c')).toBeCloseTo(0.6, 1);
  });

  it('rendezvousOrder ranks every key; without the first, the pick is the second', () => {
    for (const h of HASHES.slice(0, 500)) {
      const order = rendezvousOrder(h, four);
      expect(order).toHaveLength(4);
      expect(order[0]).toBe(rendezvousPick(h, four));
      expect(rendezvousPick(h, four.filter((k) => k !== order[0]))).toBe(order[1]);
    }
  });

  it('no keys, no pick', () => {
    expect(rendezvousPick(HASHES[0] as number, [])).toBeUndefined();
  });
});

describe('hashText', () => {
  it('is an unsigned 32-bit number that changes with the last character', () => {
    const a = hashText('the same long prefix, then x');
    const b = hashText('the same long prefix, then y');
    expect(a).not.toBe(b);
    for (const h of [a, b, hashText('')]) expect(Number.isInteger(h) && h >= 0 && h < 2 ** 32).toBe(true);
  });
});

describe('the pool with affinities', () => {
  const settings = (extra: Partial<PoolSettings> = {}): PoolSettings => ({
    upstreams: [{ id: 'main', baseUrl: 'https://main.example.test/v1', keys: ['a', 'b', 'c', 'd'].map((id) => ({ id, key: `sk-test-${id}-0123456789` })) }],
    ...extra,
  });
  const make = (extra?: Partial<PoolSettings>) => {
    const clock = { t: T0 };
    return { p: new Pool(settings(extra), { now: () => clock.t, random: () => 0.5 }), clock };
  };
  const affinity = (i: number): Affinity => ({ source: 'prefix', hash: HASHES[i] as number });
  const pick = (p: Pool, a?: Affinity, exclude?: Set<string>) => {
    const s = p.choose({ model: 'gpt-4o-mini', affinity: a && (() => a), exclude });
    return s.ok ? s.choice : undefined;
  };

  it('sends one affinity to one key, says so, and follows rendezvous order on retries', () => {
    const { p } = make();
    const keys = p.upstreams[0]?.keys ?? [];
    for (let i = 0; i < 50; i++) {
      const order = rendezvousOrder(affinity(i).hash, keys).map((k) => k.id);
      const first = pick(p, affinity(i));
      expect(first?.key.id).toBe(order[0]);
      expect(first?.affinity).toBe('prefix');
      expect(pick(p, affinity(i))?.key.id).toBe(order[0]);
      const tried = new Set([`main/${order[0]}`]);
      expect(pick(p, affinity(i), tried)?.key.id).toBe(order[1]);
      tried.add(`main/${order[1]}`);
      expect(pick(p, affinity(i), tried)?.key.id).toBe(order[2]);
    }
  });

  it('skips a cooling key for the next by rank, and comes back once it has cooled', () => {
    const { p, clock } = make();
    const keys = p.upstreams[0]?.keys ?? [];
    const order = rendezvousOrder(affinity(7).hash, keys).map((k) => k.id);
    const first = p.find('main', order[0] as string);
    if (!first) throw new Error('no key');
    p.start(first).finish({ status: 429, headers: { 'retry-after': '2' } });
    expect(pick(p, affinity(7))?.key.id).toBe(order[1]);
    clock.t += 2_001;
    expect(pick(p, affinity(7))?.key.id).toBe(order[0]);
  });

  it('does not ask for the affinity when one key is left to choose', () => {
    const { p } = make();
    let asked = 0;
    const lazy = () => {
      asked += 1;
      return affinity(5);
    };
    const tried = new Set(['main/a', 'main/b', 'main/c']);
    const s = p.choose({ model: 'gpt-4o-mini', affinity: lazy, exclude: tried });
    expect(s.ok && s.choice.key.id).toBe('d');
    expect(s.ok && s.choice.affinity).toBeUndefined();
    expect(asked).toBe(0);
    expect(pick(p, affinity(5))?.affinity).toBe('prefix');
  });

  it('a pinned object wins over the affinity', () => {
    const { p } = make();
    const keys = p.upstreams[0]?.keys ?? [];
    const other = rendezvousOrder(affinity(3).hash, keys)[3]?.id as string;
    const s = p.choose({ model: 'gpt-4o-mini', affinity: () => affinity(3), pinned: { upstreamId: 'main', keyId: other } });
    expect(s.ok && s.choice.key.id).toBe(other);
    expect(s.ok && s.choice.affinity).toBeUndefined();
  });

  it('requests with nothing to hash follow the strategy, whose cursor affinity picks do not move', () => {
    const { p } = make();
    const seen: string[] = [];
    for (let i = 0; i < 8; i++) {
      const plain = pick(p);
      seen.push(plain?.key.id as string);
      expect(plain?.affinity).toBeUndefined();
      pick(p, affinity(i));
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'a', 'b', 'c', 'd']);
  });

  it('an affinity retry left with one key does not move the cursor either', () => {
    const { p } = make();
    const seen: string[] = [];
    for (let i = 0; i < 8; i++) {
      seen.push(pick(p)?.key.id as string);
      // Every key but one tried (or cooling): the one left serves, the strategy is not asked.
      const order = rendezvousOrder(affinity(i).hash, p.upstreams[0]?.keys ?? []).map((k) => k.id);
      const tried = new Set(order.slice(0, 3).map((id) => `main/${id}`));
      expect(pick(p, affinity(i), tried)?.key.id).toBe(order[3]);
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'a', 'b', 'c', 'd']);
  });

  it('cacheAffinity false: the strategy picks every key', () => {
    const { p } = make({ pool: { cacheAffinity: false } });
    expect(p.cacheAffinity).toBe(false);
    const seen = Array.from({ length: 8 }, () => pick(p, affinity(1)));
    expect(seen.map((c) => c?.key.id)).toEqual(['a', 'b', 'c', 'd', 'a', 'b', 'c', 'd']);
    expect(seen.every((c) => c?.affinity === undefined)).toBe(true);
  });

  it('a reload that turns it off takes effect for the next request', () => {
    const { p } = make();
    expect(p.cacheAffinity).toBe(true);
    p.applySettings(settings({ pool: { cacheAffinity: false } }));
    expect(p.cacheAffinity).toBe(false);
    expect(pick(p, affinity(1))?.affinity).toBeUndefined();
  });
});
