// The four strategies over fixed candidate lists: exact, deterministic shares over N picks.
import { describe, expect, it } from 'vitest';
import { type Candidate, createStrategy } from '../src/pool/strategies.js';

interface Named extends Candidate {
  name: string;
}

function candidates(spec: Array<Partial<Named> & { name: string }>): Named[] {
  return spec.map((c, index) => ({ index, weight: 1, inFlight: 0, headroom: 1, ...c }));
}

function counts(names: Array<string | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of names) if (n !== undefined) out[n] = (out[n] ?? 0) + 1;
  return out;
}

describe('round robin', () => {
  it('takes each key in turn', () => {
    const s = createStrategy('round-robin');
    const list = candidates([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    expect(Array.from({ length: 7 }, () => s.pick(list)?.name)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
  });

  it('skips a key left out of one pick and keeps its place in the turn', () => {
    const s = createStrategy('round-robin');
    const all = candidates([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const withoutB = all.filter((c) => c.name !== 'b');
    expect([s.pick(all), s.pick(withoutB), s.pick(all), s.pick(all)].map((c) => c?.name)).toEqual(['a', 'c', 'a', 'b']);
  });

  it('has nothing to pick from nothing', () => {
    expect(createStrategy('round-robin').pick([])).toBeUndefined();
  });
});

describe('weighted: smooth weighted round robin', () => {
  it("gives nginx's interleaved order for weights 5, 1, 1", () => {
    const s = createStrategy('weighted');
    const list = candidates([{ name: 'a', weight: 5 }, { name: 'b', weight: 1 }, { name: 'c', weight: 1 }]);
    expect(Array.from({ length: 7 }, () => s.pick(list)?.name).join('')).toBe('aabacaa');
  });

  it('gives each key exactly its share over whole rounds', () => {
    const s = createStrategy('weighted');
    const list = candidates([{ name: 'a', weight: 3 }, { name: 'b', weight: 2 }, { name: 'c', weight: 5 }]);
    const picks = Array.from({ length: 1000 }, () => s.pick(list)?.name);
    expect(counts(picks)).toEqual({ a: 300, b: 200, c: 500 });
  });

  it('never sends two in a row to a key of a third of the weight', () => {
    const s = createStrategy('weighted');
    const list = candidates([{ name: 'a', weight: 2 }, { name: 'b', weight: 1 }]);
    const picks = Array.from({ length: 30 }, () => s.pick(list)?.name).join('');
    expect(picks).not.toContain('bb');
    expect(picks).not.toContain('aaa');
  });

  it('shares the rest among the keys left when one is out', () => {
    const s = createStrategy('weighted');
    const list = candidates([{ name: 'a', weight: 2 }, { name: 'b', weight: 1 }, { name: 'c', weight: 1 }]);
    const withoutA = list.filter((c) => c.name !== 'a');
    const picks = Array.from({ length: 100 }, () => s.pick(withoutA)?.name);
    expect(counts(picks)).toEqual({ b: 50, c: 50 });
  });
});

describe('least in flight', () => {
  it('takes the key with the fewest requests in flight', () => {
    const s = createStrategy('least-in-flight');
    const list = candidates([{ name: 'a', inFlight: 4 }, { name: 'b', inFlight: 1 }, { name: 'c', inFlight: 2 }]);
    expect(s.pick(list)?.name).toBe('b');
  });

  it('per unit of weight', () => {
    const s = createStrategy('least-in-flight');
    const list = candidates([{ name: 'a', inFlight: 4, weight: 4 }, { name: 'b', inFlight: 2, weight: 1 }]);
    expect(s.pick(list)?.name).toBe('a');
  });

  it('turns round among equals', () => {
    const s = createStrategy('least-in-flight');
    const list = candidates([{ name: 'a' }, { name: 'b' }, { name: 'c', inFlight: 1 }]);
    expect(Array.from({ length: 4 }, () => s.pick(list)?.name)).toEqual(['a', 'b', 'a', 'b']);
  });

  it('spreads a burst evenly when each pick adds one in flight', () => {
    const s = createStrategy('least-in-flight');
    const load = { a: 0, b: 3, c: 1 };
    for (let i = 0; i < 20; i++) {
      const list = candidates(Object.entries(load).map(([name, inFlight]) => ({ name, inFlight })));
      const picked = s.pick(list)?.name as keyof typeof load;
      load[picked]++;
    }
    expect(load).toEqual({ a: 8, b: 8, c: 8 });
  });
});

describe('rate-aware', () => {
  it('steers away from a nearly spent key', () => {
    const s = createStrategy('rate-aware');
    const list = candidates([{ name: 'fresh', headroom: 1 }, { name: 'spent', headroom: 0.05 }, { name: 'half', headroom: 0.5 }]);
    const picks = counts(Array.from({ length: 1550 }, () => s.pick(list)?.name));
    expect(picks).toEqual({ fresh: 1000, spent: 50, half: 500 });
  });

  it('is plain weighted when every key has room', () => {
    const s = createStrategy('rate-aware');
    const list = candidates([{ name: 'a', weight: 3 }, { name: 'b', weight: 1 }]);
    expect(counts(Array.from({ length: 400 }, () => s.pick(list)?.name))).toEqual({ a: 300, b: 100 });
  });

  it('still gives a key with almost nothing left a trickle', () => {
    const s = createStrategy('rate-aware');
    const list = candidates([{ name: 'a', headroom: 1 }, { name: 'b', headroom: 0 }]);
    expect(counts(Array.from({ length: 1010 }, () => s.pick(list)?.name))).toEqual({ a: 1000, b: 10 });
  });
});
