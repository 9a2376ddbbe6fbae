// The embedded store: one process, nothing kept across restarts.
import { MemoryAlertStore } from '../alerts/types.js';
import { MemoryAuditLog } from '../audit/log.js';
import { MemoryHealthSync } from '../pool/health-sync.js';
import { MemoryCatalogStore } from '../pool/catalog-store.js';
import { MemoryObjectOwners } from '../pool/object-owners.js';
import { MemoryLedger } from '../quota/ledger.js';
import { MemoryLaterCharges } from './later-charges.js';
import { MemorySessionStore } from '../console-server/sessions.js';
import { MemoryFailureCounter } from '../console-server/throttle.js';
import { isLiveKey } from '../keys.js';
import type { KeyRecord, Store, User, UserPatch } from './types.js';

const PRUNE_EVERY_MS = 60_000;

/** Oldest first, as every backend lists them. */
export function byCreation<T extends { createdAt: string; id: string }>(a: T, b: T): number {
  return a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** A user as kept here: frozen, so that a request may hold it without a copy of its own. */
function kept(user: User): User {
  const copy = structuredClone(user);
  const freeze = (value: unknown): void => {
    if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return;
    for (const inner of Object.values(value)) freeze(inner);
    Object.freeze(value);
  };
  freeze(copy);
  return copy;
}

export function createMemoryStore(): Store {
  const users = new Map<string, User>();
  // Ids of deleted users: never given out again (their objects and counters outlive them).
  const retired = new Set<string>();
  const keys = new Map<string, KeyRecord>();
  const byDigest = new Map<string, string>();
  const ledger = new MemoryLedger();
  const pruner = setInterval(() => ledger.prune(Date.now()), PRUNE_EVERY_MS);
  pruner.unref();

  return {
    kind: 'memory',
    async createUser(user) {
      if (users.has(user.id) || retired.has(user.id)) return false;
      users.set(user.id, kept(user));
      return true;
    },
    async wasDeleted(id) {
      return retired.has(id);
    },
    async getUser(id) {
      const user = users.get(id);
      return user && structuredClone(user);
    },
    async listUsers() {
      return [...users.values()].map((u) => structuredClone(u)).sort(byCreation);
    },
    async updateUser(id, patch: UserPatch) {
      const user = users.get(id);
      if (!user) return undefined;
      const next = kept({ ...user, ...patch, limits: patch.limits ?? user.limits });
      users.set(id, next);
      return structuredClone(next);
    },
    async deleteUser(id) {
      if (!users.delete(id)) return false;
      retired.add(id);
      for (const [keyId, key] of keys) {
        if (key.userId === id) {
          keys.delete(keyId);
          byDigest.delete(key.digest);
        }
      }
      return true;
    },
    async createKey(key: KeyRecord, maxLive?: number) {
      if (maxLive !== undefined) {
        const now = Date.now();
        let live = 0;
        for (const k of keys.values()) if (k.userId === key.userId && isLiveKey(k, now)) live++;
        if (live >= maxLive) return false;
      }
      keys.set(key.id, { ...key });
      byDigest.set(key.digest, key.id);
      return true;
    },
    async findKeyByDigest(digest) {
      const id = byDigest.get(digest);
      const key = id === undefined ? undefined : keys.get(id);
      return key && { ...key };
    },
    async findCaller(digest) {
      const id = byDigest.get(digest);
      const key = id === undefined ? undefined : keys.get(id);
      if (!key) return undefined;
      const user = users.get(key.userId);
      // Every request authenticates: the user is handed out frozen rather than copied.
      return { key: { ...key }, user };
    },
    async getKey(id) {
      const key = keys.get(id);
      return key && { ...key };
    },
    async listKeys(userId) {
      return [...keys.values()].filter((k) => k.userId === userId).map((k) => ({ ...k })).sort(byCreation);
    },
    async forgetEndedKeys(userId, keep, now) {
      const ended = [...keys.values()].filter((k) => k.userId === userId && !isLiveKey(k, now)).sort(byCreation);
      const gone = ended.slice(0, Math.max(0, ended.length - keep));
      for (const k of gone) {
        keys.delete(k.id);
        byDigest.delete(k.digest);
      }
      return gone.length;
    },
    async revokeKey(id, at) {
      const key = keys.get(id);
      if (!key) return undefined;
      key.revokedAt ??= at;
      return { ...key };
    },
    async reserve(input) {
      return ledger.reserve(input);
    },
    async settle(input) {
      ledger.settle(input);
    },
    async usage(userId, limits, now) {
      return ledger.usage(userId, limits, now);
    },
    keyHealth: new MemoryHealthSync(),
    poolCatalog: new MemoryCatalogStore(),
    objectOwners: new MemoryObjectOwners(),
    audit: new MemoryAuditLog(),
    alerts: new MemoryAlertStore(),
    laterCharges: new MemoryLaterCharges(),
    consoleSessions: new MemorySessionStore(),
    signInFailures: new MemoryFailureCounter(),
    async ping() {
      return true;
    },
    async close() {
      clearInterval(pruner);
    },
  };
}
