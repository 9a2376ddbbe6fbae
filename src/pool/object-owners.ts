// Who owns each object created through the gateway: the user who created it, and the upstream key
// that holds it. Requests naming an object go to that key; another user's object answers 404
// (README, "The key pool"). The store-backed implementation shares it across processes
// (src/store/redis-owners.ts); the one here lives in one process's memory.
//
// A record is kept as long as the upstream may keep its object, never less: forgotten, the object
// would answer 404 to its owner, or, with `pool.shareUnknownObjects`, be open to every user. So
// nothing is ever pushed out to make room for another user's records. Instead each user's own
// records are counted, and a user holding `pool.maxObjectsPerUser` of them may create no more
// (src/relay/object-slots.ts): what one user makes never costs another user anything.
//
// A request that may create objects first takes a slot, counted like an object, so that requests
// sent at once cannot all pass the check; it gives the slot back once its answer is read (its
// objects are recorded by then). A slot a crashed process never gave back lapses after its lease.
import { objectKindOf } from './objects.js';

export interface ObjectOwner {
  userId: string;
  upstreamId: string;
  keyId: string;
}

export interface ObjectOwners {
  /** Records the owner; the object counts for its user until deleted (or lapsed). Never refused:
   * the object exists. */
  record(id: string, owner: ObjectOwner): Promise<void>;
  lookup(id: string): Promise<ObjectOwner | undefined>;
  /** The owners of those ids that have one (one round trip for a body naming many files). */
  lookupMany(ids: readonly string[]): Promise<Map<string, ObjectOwner>>;
  /** The object was deleted upstream: its record goes, and it no longer counts for its user.
   * `byUser`, the user whose request deleted it (its owner, as the request was checked): their
   * count drops in the same tick, so that their next request already finds the room. */
  forget(id: string, byUser?: string): Promise<void>;
  /** Takes a slot for request `requestId` of `userId`, which may create objects, unless the
   * user's objects and slots already number `max`: one atomic step. Lapses after `leaseMs`. */
  hold(userId: string, requestId: string, max: number, leaseMs: number): Promise<boolean>;
  /** Gives back the slot of `hold`. */
  release(userId: string, requestId: string): Promise<void>;
  /** What counts for the user now: their objects and slots. */
  held(userId: string): Promise<number>;
}

const DAY_MS = 24 * 3_600_000;
/** OpenAI keeps a stored response 30 days from its creation: a record made when the gateway saw it
 * created lapses no earlier. */
export const RESPONSE_LIFETIME_MS = 30 * DAY_MS;

/** How long the record of `id` is kept once recorded: as long as the upstream may keep the object.
 * Files, vector stores, assistants, fine-tuned models, ChatKit claims … are kept until deleted. */
export function recordLifetimeMs(id: string): number {
  return objectKindOf(id) === 'response' ? RESPONSE_LIFETIME_MS : Number.POSITIVE_INFINITY;
}

/** A held slot, among a user's objects: no object id or claim begins so. */
export const SLOT_PREFIX = 'slot:';

export interface MemoryObjectOwnersOptions {
  now?: () => number;
}

interface Holding {
  /** When it lapses: Infinity for never. */
  at: number;
  lifetimeMs: number;
}

interface Lapse {
  userId: string;
  member: string;
  at: number;
}

export class MemoryObjectOwners implements ObjectOwners {
  private readonly owners = new Map<string, ObjectOwner>();
  /** Per user: each object they own and each slot they hold. */
  private readonly holdings = new Map<string, Map<string, Holding>>();
  /** What lapses, one queue per lifetime: a Map keeps the order entries were (re)made in, which
   * within one lifetime is the order they lapse in, so a sweep stops at the first still alive. */
  private readonly lapsing = new Map<number, Map<string, Lapse>>();
  private readonly now: () => number;

  constructor(options: MemoryObjectOwnersOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  /** Object records kept. */
  get size(): number {
    return this.owners.size;
  }

  async record(id: string, owner: ObjectOwner): Promise<void> {
    this.sweep();
    const previous = this.owners.get(id);
    if (previous && previous.userId !== owner.userId) this.drop(previous.userId, id);
    this.owners.set(id, { userId: owner.userId, upstreamId: owner.upstreamId, keyId: owner.keyId });
    this.add(owner.userId, id, recordLifetimeMs(id));
  }

  async lookup(id: string): Promise<ObjectOwner | undefined> {
    this.sweep();
    const owner = this.owners.get(id);
    return owner && { ...owner };
  }

  async lookupMany(ids: readonly string[]): Promise<Map<string, ObjectOwner>> {
    this.sweep();
    const found = new Map<string, ObjectOwner>();
    for (const id of ids) {
      const owner = this.owners.get(id);
      if (owner) found.set(id, { ...owner });
    }
    return found;
  }

  async forget(id: string): Promise<void> {
    const owner = this.owners.get(id);
    if (!owner) return;
    this.owners.delete(id);
    this.drop(owner.userId, id);
  }

  async hold(userId: string, requestId: string, max: number, leaseMs: number): Promise<boolean> {
    this.sweep();
    if ((this.holdings.get(userId)?.size ?? 0) >= max) return false;
    this.add(userId, SLOT_PREFIX + requestId, leaseMs);
    return true;
  }

  async release(userId: string, requestId: string): Promise<void> {
    this.drop(userId, SLOT_PREFIX + requestId);
  }

  async held(userId: string): Promise<number> {
    this.sweep();
    return this.holdings.get(userId)?.size ?? 0;
  }

  private add(userId: string, member: string, lifetimeMs: number): void {
    let mine = this.holdings.get(userId);
    if (!mine) this.holdings.set(userId, (mine = new Map()));
    this.unqueue(userId, member, mine.get(member));
    const at = this.now() + lifetimeMs;
    mine.set(member, { at, lifetimeMs });
    if (at === Number.POSITIVE_INFINITY) return;
    let queue = this.lapsing.get(lifetimeMs);
    if (!queue) this.lapsing.set(lifetimeMs, (queue = new Map()));
    queue.set(lapseKey(userId, member), { userId, member, at });
  }

  private drop(userId: string, member: string): void {
    const mine = this.holdings.get(userId);
    if (!mine) return;
    this.unqueue(userId, member, mine.get(member));
    mine.delete(member);
    if (mine.size === 0) this.holdings.delete(userId);
  }

  private unqueue(userId: string, member: string, holding: Holding | undefined): void {
    if (holding && holding.at !== Number.POSITIVE_INFINITY) this.lapsing.get(holding.lifetimeMs)?.delete(lapseKey(userId, member));
  }

  /** Drops what has lapsed: each entry once, so it costs nothing on average. */
  private sweep(): void {
    const now = this.now();
    for (const queue of this.lapsing.values()) {
      for (const [key, lapse] of queue) {
        if (lapse.at > now) break;
        queue.delete(key);
        const mine = this.holdings.get(lapse.userId);
        mine?.delete(lapse.member);
        if (mine?.size === 0) this.holdings.delete(lapse.userId);
        if (this.owners.get(lapse.member)?.userId === lapse.userId) this.owners.delete(lapse.member);
      }
    }
  }
}

/** One string per (user, member), whatever characters either holds. */
const lapseKey = (userId: string, member: string): string => JSON.stringify([userId, member]);

export type Ownership =
  /** The request names no tracked object: any key will do. */
  | { kind: 'free' }
  /** Every object it names is the caller's, on this one key. */
  | { kind: 'pinned'; upstreamId: string; keyId: string }
  /** It names another user's object: 404, as if it did not exist. */
  | { kind: 'foreign'; id: string }
  /** It names an object the gateway never saw created: 404 unless unknown objects are shared. */
  | { kind: 'unknown'; id: string }
  /** The caller's objects it names live on different keys: no one key can serve it. */
  | { kind: 'split'; ids: string[] };

/**
 * What the named objects' owners mean for a request of `userId`. Another user's object is
 * reported before an unknown one, both before a split, so a caller never learns more than 404.
 * With `shareUnknown`, objects the gateway never saw created are passed over (any key, any user).
 */
export function resolveOwnership(
  ids: readonly string[],
  owners: ReadonlyMap<string, ObjectOwner>,
  userId: string,
  options: { shareUnknown?: boolean } = {},
): Ownership {
  const mine: Array<[string, ObjectOwner]> = [];
  let unknown: string | undefined;
  for (const id of ids) {
    const owner = owners.get(id);
    if (!owner) {
      unknown ??= id;
      continue;
    }
    if (owner.userId !== userId) return { kind: 'foreign', id };
    mine.push([id, owner]);
  }
  if (unknown !== undefined && !options.shareUnknown) return { kind: 'unknown', id: unknown };
  const [first] = mine;
  if (!first) return { kind: 'free' };
  const [, pin] = first;
  const elsewhere = mine.filter(([, o]) => o.upstreamId !== pin.upstreamId || o.keyId !== pin.keyId);
  if (elsewhere.length > 0) return { kind: 'split', ids: mine.map(([id]) => id) };
  return { kind: 'pinned', upstreamId: pin.upstreamId, keyId: pin.keyId };
}
