// The console's session store on each backend (memory, Redis, Redis Cluster): kept under the
// digest until its expiry and no longer, deleted at once, on Redis with the TTL set by the store
// itself; and the sign-in throttle's memory bound.
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_ROOT } from '../src/console-server/static.js';
import { FailureThrottle } from '../src/console-server/throttle.js';
import type { ConsoleSession } from '../src/console-server/sessions.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

const session = (expiresAt: number, role: ConsoleSession['role'] = 'admin'): ConsoleSession => ({
  role,
  ...(role === 'user' ? { userId: 'alice', keyId: 'key_1' } : {}),
  csrfToken: 'csrf-token-value',
  expiresAt,
});

describe.each(STORE_BACKENDS)('console sessions in the %s store', (_name, start) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await start();
  });
  afterAll(() => backend?.stop());

  it('keeps a session under its digest until it expires, and deletes it', async () => {
    const sessions = backend.store.consoleSessions;
    const now = Date.now();
    await sessions.put('a'.repeat(64), session(now + 60_000, 'user'));
    await sessions.put('b'.repeat(64), session(now + 60_000));
    expect(await sessions.get('a'.repeat(64), now)).toEqual(session(now + 60_000, 'user'));
    expect(await sessions.get('c'.repeat(64), now)).toBeUndefined();
    // Past its expiry it is gone, whatever the backend still holds.
    expect(await sessions.get('b'.repeat(64), now + 60_001)).toBeUndefined();
    await sessions.delete('a'.repeat(64));
    expect(await sessions.get('a'.repeat(64), now)).toBeUndefined();
  });

  it('on Redis: one key per session, with a TTL to its expiry', async () => {
    if (!backend.keys) {
      expect(backend.store.kind).toBe('memory');
      return;
    }
    const now = Date.now();
    await backend.store.consoleSessions.put('d'.repeat(64), session(now + 30_000));
    const keys = await backend.keys(`kr:console:session:${'d'.repeat(64)}`);
    expect(keys).toHaveLength(1);
    expect(keys[0]?.pttl).toBeGreaterThan(20_000);
    expect(keys[0]?.pttl).toBeLessThanOrEqual(30_000);
  });
});

describe('the sign-in throttle', () => {
  it('slows an address past its limit within the window, and no longer after it', () => {
    const throttle = new FailureThrottle({ limit: 3, windowMs: 60_000, maxEntries: 100 });
    for (let i = 0; i < 3; i++) {
      expect(throttle.retryAfter('10.0.0.1', 1000)).toBe(0);
      throttle.failed('10.0.0.1', 1000);
    }
    expect(throttle.retryAfter('10.0.0.1', 1000)).toBe(60);
    expect(throttle.retryAfter('10.0.0.2', 1000)).toBe(0);
    expect(throttle.retryAfter('10.0.0.1', 61_000)).toBe(0);
  });

  it('remembers at most maxEntries addresses, however many fail', () => {
    const throttle = new FailureThrottle({ limit: 3, windowMs: 60_000, maxEntries: 100 });
    for (let i = 0; i < 10_000; i++) throttle.failed(`10.1.${i >> 8}.${i & 255}`, 1000 + i);
    expect(throttle.size).toBe(100);
  });
});

it('finds the built console at dist/console/ of the package root', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  expect(CONSOLE_ROOT).toBe(join(root, 'dist', 'console') + sep);
});
