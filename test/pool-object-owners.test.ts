// Who owns what: the bounded in-memory owner table (least recently used out, a time to live) and
// what the owners of the ids a request names mean for it (RELIABILITY.md 4: another user's object is 404).
import { describe, expect, it } from 'vitest';
import { MemoryObjectOwners, type ObjectOwner, resolveOwnership } from '../src/pool/object-owners.js';

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

  it('is bounded: the least recently used goes first', async () => {
    const owners = new MemoryObjectOwners({ maxEntries: 3 });
    await owners.record('file-1', alice);
    await owners.record('file-2', alice);
    await owners.record('file-3', alice);
    await owners.lookup('file-1');
    await owners.record('file-4', alice);
    expect(owners.size).toBe(3);
    expect(await owners.lookupMany(['file-1', 'file-2', 'file-3', 'file-4'])).toEqual(new Map([['file-1', alice], ['file-3', alice], ['file-4', alice]]));
  });

  it('forgets what was not used for its time to live, and each use extends it', async () => {
    const clock = { t: T0 };
    const owners = new MemoryObjectOwners({ ttlMs: 1000, now: () => clock.t });
    await owners.record('file-used', alice);
    await owners.record('file-idle', alice);
    clock.t += 900;
    expect(await owners.lookup('file-used')).toEqual(alice);
    clock.t += 900;
    expect(await owners.lookup('file-used')).toEqual(alice);
    expect(await owners.lookup('file-idle')).toBeUndefined();
    expect(owners.size).toBe(1);
  });

  it('a later record moves an object to its new owner', async () => {
    const owners = new MemoryObjectOwners();
    await owners.record('file-1', alice);
    await owners.record('file-1', aliceOnB);
    expect(await owners.lookup('file-1')).toEqual(aliceOnB);
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
