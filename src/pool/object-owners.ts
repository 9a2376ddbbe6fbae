// Who owns each object created through the gateway: the user who created it, and the upstream key
// that holds it. Requests naming an object go to that key; another user's object answers 404
// (CONTRACT.md, The relay). The store-backed implementation shares it across processes; the one
// here is bounded in memory (least recently used out first, and a time to live).

export interface ObjectOwner {
  userId: string;
  upstreamId: string;
  keyId: string;
}

export interface ObjectOwners {
  record(id: string, owner: ObjectOwner): Promise<void>;
  lookup(id: string): Promise<ObjectOwner | undefined>;
  /** The owners of those ids that have one (one round trip for a body naming many files). */
  lookupMany(ids: readonly string[]): Promise<Map<string, ObjectOwner>>;
  /** The object was deleted upstream. */
  forget(id: string): Promise<void>;
}

export interface MemoryObjectOwnersOptions {
  maxEntries?: number;
  /** How long an entry is kept after it was last recorded or looked up. */
  ttlMs?: number;
  now?: () => number;
}

interface Entry {
  owner: ObjectOwner;
  expiresAt: number;
}

export class MemoryObjectOwners implements ObjectOwners {
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: MemoryObjectOwnersOptions = {}) {
    this.maxEntries = options.maxEntries ?? 100_000;
    // OpenAI keeps stored responses 30 days; files and the rest until deleted.
    this.ttlMs = options.ttlMs ?? 30 * 24 * 3_600_000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  async record(id: string, owner: ObjectOwner): Promise<void> {
    this.entries.delete(id);
    this.entries.set(id, { owner: { ...owner }, expiresAt: this.now() + this.ttlMs });
    // A Map iterates in insertion order: the first entry is the least recently used.
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  async lookup(id: string): Promise<ObjectOwner | undefined> {
    return this.touch(id);
  }

  async lookupMany(ids: readonly string[]): Promise<Map<string, ObjectOwner>> {
    const found = new Map<string, ObjectOwner>();
    for (const id of ids) {
      const owner = this.touch(id);
      if (owner) found.set(id, owner);
    }
    return found;
  }

  async forget(id: string): Promise<void> {
    this.entries.delete(id);
  }

  private touch(id: string): ObjectOwner | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    const now = this.now();
    this.entries.delete(id);
    if (entry.expiresAt <= now) return undefined;
    entry.expiresAt = now + this.ttlMs;
    this.entries.set(id, entry);
    return { ...entry.owner };
  }
}

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
