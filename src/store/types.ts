// The store keeps users and their keys (and, later, quota counters and usage). One interface,
// several backends: the tests run the same suite against each so they cannot drift.

export interface Limits {
  rpm?: number;
  tpm?: number;
  tokensPerDay?: number;
  tokensPerMonth?: number;
  usdPerDay?: number;
  usdPerMonth?: number;
  maxConcurrent?: number;
}

export interface User {
  id: string;
  name?: string;
  /** Glob patterns of the models the user may call; absent means any. */
  models?: string[];
  /** ISO 8601; past it, the user's keys stop working. */
  expiresAt?: string;
  limits: Limits;
  createdAt: string;
}

export interface KeyRecord {
  id: string;
  userId: string;
  name?: string;
  /** The first characters of the key, enough to recognise it in a list. */
  prefix: string;
  /** SHA-256 of the whole key, hex. The key itself is never stored. */
  digest: string;
  createdAt: string;
  expiresAt?: string;
  revokedAt?: string;
}

export type UserPatch = Partial<Pick<User, 'name' | 'models' | 'expiresAt' | 'limits'>>;

export interface Store {
  readonly kind: 'memory' | 'redis' | 'cluster';
  /** Creates the user; resolves false when the id is taken. */
  createUser(user: User): Promise<boolean>;
  getUser(id: string): Promise<User | undefined>;
  listUsers(): Promise<User[]>;
  updateUser(id: string, patch: UserPatch): Promise<User | undefined>;
  /** Deletes the user and every key of theirs; resolves false when there was none. */
  deleteUser(id: string): Promise<boolean>;

  createKey(key: KeyRecord): Promise<void>;
  findKeyByDigest(digest: string): Promise<KeyRecord | undefined>;
  getKey(id: string): Promise<KeyRecord | undefined>;
  listKeys(userId: string): Promise<KeyRecord[]>;
  /** Marks the key revoked; resolves the updated record, or undefined when there is none. */
  revokeKey(id: string, at: string): Promise<KeyRecord | undefined>;

  /** True when the backend answers (readiness). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
