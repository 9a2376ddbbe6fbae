// Gateway keys: `sk-kr-` and 40 random base62 characters, kept only as a SHA-256 digest.
import { hash, randomBytes } from 'node:crypto';
import { isPast } from './iso-time.js';
import type { KeyRecord } from './store/types.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export const KEY_PREFIX = 'sk-kr-';
const KEY_PATTERN = /^sk-kr-[A-Za-z0-9]{32,128}$/;

/** Uniform base62: bytes of 248 and above are dropped so no character is favoured. */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

export function newGatewayKey(): string {
  return KEY_PREFIX + randomBase62(40);
}

export function isGatewayKeyShape(value: string): boolean {
  return KEY_PATTERN.test(value);
}

/** One-shot `hash` (Node 20.12+): no Hash object per request. */
export function digestKey(key: string): string {
  return hash('sha256', key, 'hex');
}

export function displayPrefix(key: string): string {
  return key.slice(0, KEY_PREFIX.length + 4);
}

export function newId(prefix: string): string {
  return `${prefix}_${randomBase62(16)}`;
}

/** A key that still works: not revoked, not expired. What the cap on a user's keys counts. */
export function isLiveKey(key: KeyRecord, now: number): boolean {
  return key.revokedAt === undefined && !isPast(key.expiresAt, now);
}
