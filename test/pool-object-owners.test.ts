// Who owns what: the in-memory owner table (counted per user, responses lapse, nothing evicted) and
// what the owners of the ids a request names mean for it (docs/reliability.md, case 4: another user's object is 404).
import { describe, expect, it } from 'vitest';
import { MemoryObjectOwners, type ObjectOwner, RESPONSE_LIFETIME_MS, resolveOwnership } from '../src/pool/object-owners.js';

const T0 = 1_700_000_000_000;
const alice: ObjectOwner = { userId: 'alice', upstreamId: 'main', keyId: 'a' };
const aliceOnB: ObjectOwner = { userId: 'alice', upstreamId: 'main', keyId: 'b' };
const bob: ObjectOwner = { userId: 'bob', upstreamId: 'main', keyId: 'a' };

describe('the memory owner table', () => {
  it('records, looks up and forgets', async () => {
    const owners = new MemoryObjectOwners();
    await owners.record('file-1', alice);
    expect(await owners.lookup('file-1')).toEqual(alice);
    expect(await owners.lookup('file-2')).toBeUndefined();
    await owners.forget('file-1');
    expect(await owners.lookup('file-1')).toBeUndefined();
  });

  it('looks up many at once, leaving out the unknown', async () => {
    const owners = new MemoryObjectOwners();
    await owners.record('file-1', alice);
    await owners.record('vs_1', bob);
    expect(await owners.lookupMany(['file-1', 'file-9', 'vs_1'])).toEqual(new Map([['file-1', alice], ['vs_1', bob]]));
  });

  it('hands out copies', async () => {
    const owners = new MemoryObjectOwners();
    const owner = { ...alice };
    await owners.record('file-1', owner);
    owner.keyId = 'changed';
    const found = await owners.lookup('file-1');
    if (found) found.userId = 'mallory';
    expect(await owners.lookup('file-1')).toEqual(alice);
  });

  it('forgets nothing to make room: each user counts their own objects and the slots they hold', async () => {
    const owners = new MemoryObjectOwners();
    await owners.record('file-alice', alice);
    for (let i = 0; i < 1000; i++) await owners.record(`file-bob-${i}`, bob);
    expect(await owners.lookup('file-alice')).toEqual(alice);
    expect(await owners.held('alice')).toBe(1);
    expect(await owners.held('bob')).toBe(1000);
    expect(await owners.hold('bob', 'req-1', 1000, 60_000)).toBe(false);
    expect(await owners.hold('alice', 'req-2', 2, 60_000)).toBe(true);
    expect(await owners.hold('alice', 'req-3', 2, 60_000)).toBe(false);
    await owners.release('alice', 'req-2');
    await owners.forget('file-alice');
    expect(await owners.held('alice')).toBe(0);
  });

  it('keeps a response 30 days from its record, whatever its use, and a file until it is deleted', async () => {
    const clock = { t: T0 };
    const owners = new MemoryObjectOwners({ now: () => clock.t });
    await owners.record('resp_1', alice);
    await owners.record('file-1', alice);
    clock.t += RESPONSE_LIFETIME_MS - 1;
    expect(await owners.lookup('resp_1')).toEqual(alice);
    clock.t += 1;
    expect(await owners.lookup('resp_1')).toBeUndefined();
    clock.t += 1000 * RESPONSE_LIFETIME_MS;
    expect(await owners.lookup('file-1')).toEqual(alice);
    expect(await owners.held('alice')).toBe(1);
    expect(owners.size).toBe(1);
  });

  it('a slot never given back lapses after its lease', async () => {
    const clock = { t: T0 };
    const owners = new MemoryObjectOwners({ now: () => clock.t });
    expect(await owners.hold('alice', 'crashed', 1, 1000)).toBe(true);
    expect(await owners.hold('alice', 'next', 1, 1000)).toBe(false);
    clock.t += 1000;
    expect(await owners.hold('alice', 'next', 1, 1000)).toBe(true);
  });

  it('a later record moves an object to its new owner', async () => {
    const owners = new MemoryObjectOwners();
    await owners.record('file-1', alice);
    await owners.record('file-1', aliceOnB);
    expect(await owners.lookup('file-1')).toEqual(aliceOnB);
    await owners.record('file-1', bob);
    expect(await owners.lookup('file-1')).toEqual(bob);
    expect([await owners.held('alice'), await owners.held('bob')]).toEqual([0, 1]);
  });
});

describe('what the owners mean for a request', () => {
  const table = new Map<string, ObjectOwner>([
    ['file-a1', alice],
    ['vs_a1', alice],
    ['file-b1', aliceOnB],
    ['file-bob', bob],
  ]);

  it.each([
    ['names nothing', [], { kind: 'free' }],
    ["names alice's objects on one key", ['vs_a1', 'file-a1'], { kind: 'pinned', upstreamId: 'main', keyId: 'a' }],
    ["names bob's object", ['file-a1', 'file-bob'], { kind: 'foreign', id: 'file-bob' }],
    ['names an object nobody created here', ['file-a1', 'file-unseen'], { kind: 'unknown', id: 'file-unseen' }],
    ["bob's before an unknown one", ['file-unseen', 'file-bob'], { kind: 'foreign', id: 'file-bob' }],
    ["names alice's objects on two keys", ['file-a1', 'file-b1'], { kind: 'split', ids: ['file-a1', 'file-b1'] }],
    ['unknown before split', ['file-a1', 'file-b1', 'file-unseen'], { kind: 'unknown', id: 'file-unseen' }],
  ] as const)('alice %s', (_name, ids, ownership) => {
    expect(resolveOwnership(ids, table, 'alice')).toEqual(ownership);
  });

  it("bob's request for alice's file is foreign to him", () => {
    expect(resolveOwnership(['file-a1'], table, 'bob')).toEqual({ kind: 'foreign', id: 'file-a1' });
  });

  it('with unknown objects shared, they route anywhere and pin nothing', () => {
    expect(resolveOwnership(['file-unseen'], table, 'alice', { shareUnknown: true })).toEqual({ kind: 'free' });
    expect(resolveOwnership(['file-unseen', 'file-a1'], table, 'alice', { shareUnknown: true })).toEqual({ kind: 'pinned', upstreamId: 'main', keyId: 'a' });
    expect(resolveOwnership(['file-unseen', 'file-bob'], table, 'alice', { shareUnknown: true })).toEqual({ kind: 'foreign', id: 'file-bob' });
  });
});
