// The bounded map behind the gateway's memos: never more than its limit, a new key into a full map
// starts it over, and a key already in it is updated without losing the rest.
import { describe, expect, it } from 'vitest';
import { BoundedMap } from '../src/bounded-map.js';

describe('BoundedMap', () => {
  it('holds up to its limit, then starts over for a new key', () => {
    const map = new BoundedMap<string, number>(3);
    for (const [i, key] of ['a', 'b', 'c'].entries()) map.set(key, i);
    expect([...map.keys()]).toEqual(['a', 'b', 'c']);
    map.set('d', 3);
    expect([...map.entries()]).toEqual([['d', 3]]);
  });

  it('updates a key it holds, full or not, keeping the others', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1).set('b', 2).set('a', 10);
    expect([...map.entries()]).toEqual([
      ['a', 10],
      ['b', 2],
    ]);
  });
});
