// Console sessions: what a signed-in browser holds, kept in the store so that every gateway
// process sees the same sessions and a sign-out ends one everywhere. Each is kept under the
// SHA-256 digest of its cookie value (the cookie itself is never stored), and lives until its
// expiry, which the store enforces by itself (a Redis TTL; a sweep in memory).

export type ConsoleRole = 'admin' | 'user';

export interface ConsoleSession {
  role: ConsoleRole;
  /** The user and the key they signed in with (role `user`): the session ends with either. */
  userId?: string;
  keyId?: string;
  /** Role `admin`: the admin token the session was signed in with, as `adminTag` (cookie.ts)
   * makes it; a session signed in with another token than today's is no session. */
  adminTag?: string;
  /** What each state-changing request must send as `x-csrf-token`. */
  csrfToken: string;
  /** Epoch ms. */
  expiresAt: number;
}

export interface SessionStore {
  /** Keeps the session under `digest` until its `expiresAt`. */
  put(digest: string, session: ConsoleSession): Promise<void>;
  /** The session, or undefined when there is none or it has expired. */
  get(digest: string, now: number): Promise<ConsoleSession | undefined>;
  delete(digest: string): Promise<void>;
}

// Sessions one process keeps in memory at most: past it the oldest user session goes first, so
// that sign-ins (each needs a valid token) cannot grow the process without end, and a user signing
// in over and over with their key cannot push the admin's session out.
export const MAX_MEMORY_SESSIONS = 100_000;

// Sessions one user keeps at most, on any store: past it their oldest ends. A sign-in with a right
// token is not slowed, so without this one key could fill the store (Redis included) with sessions.
export const MAX_USER_SESSIONS = 50;
const SWEEP_EVERY_MS = 60_000;

export class MemorySessionStore implements SessionStore {
  // Insertion order is expiry order for one sessionHours: the first entries go first.
  private readonly sessions = new Map<string, ConsoleSession>();
  // Each user's session digests, oldest first (some may have ended since: they only count
  // toward the cap until pushed out, so no more than MAX_USER_SESSIONS live ones are ever kept).
  private readonly byUser = new Map<string, string[]>();
  private lastSweep = 0;

  constructor(private readonly maxSessions = MAX_MEMORY_SESSIONS) {}

  async put(digest: string, session: ConsoleSession): Promise<void> {
    this.sweep(Date.now());
    this.sessions.delete(digest);
    this.sessions.set(digest, { ...session });
    if (session.role === 'user' && session.userId !== undefined) {
      const digests = this.byUser.get(session.userId) ?? [];
      digests.push(digest);
      while (digests.length > MAX_USER_SESSIONS) this.sessions.delete(digests.shift() as string);
      this.byUser.set(session.userId, digests);
    }
    while (this.sessions.size > this.maxSessions) this.sessions.delete(this.oldestToDrop());
  }

  /** The oldest user session; the oldest of all when every one is an admin's. */
  private oldestToDrop(): string {
    for (const [digest, session] of this.sessions) if (session.role === 'user') return digest;
    return this.sessions.keys().next().value as string;
  }

  async get(digest: string, now: number): Promise<ConsoleSession | undefined> {
    this.sweep(now);
    const session = this.sessions.get(digest);
    if (!session) return undefined;
    if (session.expiresAt <= now) {
      this.sessions.delete(digest);
      return undefined;
    }
    return { ...session };
  }

  async delete(digest: string): Promise<void> {
    this.sessions.delete(digest);
  }

  /** Drops expired sessions, at most once a minute (no timer to stop). */
  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    for (const [digest, session] of this.sessions) if (session.expiresAt <= now) this.sessions.delete(digest);
    for (const [userId, digests] of this.byUser) {
      const live = digests.filter((d) => this.sessions.has(d));
      if (live.length === 0) this.byUser.delete(userId);
      else this.byUser.set(userId, live);
    }
  }
}

/** A stored session read back: anything but the shape written is no session. */
export function parseSession(json: string): ConsoleSession | undefined {
  try {
    const value = JSON.parse(json) as Partial<ConsoleSession>;
    if ((value.role !== 'admin' && value.role !== 'user') || typeof value.csrfToken !== 'string' || typeof value.expiresAt !== 'number') return undefined;
    if (value.role === 'user' && (typeof value.userId !== 'string' || typeof value.keyId !== 'string')) return undefined;
    if (value.role === 'admin' && typeof value.adminTag !== 'string') return undefined;
    const { role, userId, keyId, adminTag, csrfToken, expiresAt } = value;
    return { role, userId, keyId, adminTag, csrfToken, expiresAt };
  } catch {
    return undefined;
  }
}
