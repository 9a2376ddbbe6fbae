// The sealing of secrets at rest (src/secrets/box.ts), attacked directly: a sealed value holds
// nothing of the secret, opens only where it was sealed and only under its own key, any changed
// byte makes it refuse, and a bad KEYRELAY_SECRET is refused naming the setting.
import { expect, it } from 'vitest';
import { SecretBox, SecretError, parseSecret, sealedKeyId, secretBoxFrom } from '../src/secrets/box.js';
import { registerSecret } from './helpers/log-capture.js';
import { SECRET_A, SECRET_B, fragments } from './helpers/runtime-fixture.js';

const KEY = 'sk-proj-Box0123456789abcdefghijklmnopQRST';
registerSecret(KEY);

it('seals with a fresh IV each time, naming the key id and nothing of the secret', () => {
  const box = secretBoxFrom(SECRET_A, undefined);
  const one = box.seal(KEY, 'pool key main/k1');
  const two = box.seal(KEY, 'pool key main/k1');
  expect(one).not.toBe(two);
  expect(sealedKeyId(one)).toBe(parseSecret(SECRET_A, 'x').id);
  for (const piece of fragments(KEY, 6)) expect(one).not.toContain(piece);
  expect(box.open(one, 'pool key main/k1')).toBe(KEY);
});

it('refuses a value moved to another place, altered, or sealed under another secret', () => {
  const box = secretBoxFrom(SECRET_A, undefined);
  const sealed = box.seal(KEY, 'pool key main/k1');
  expect(() => box.open(sealed, 'pool key main/k2')).toThrow(SecretError);
  const parts = sealed.split(':');
  const body = Buffer.from(parts[3] as string, 'base64');
  body[0] = (body[0] ?? 0) ^ 1;
  parts[3] = body.toString('base64');
  expect(() => box.open(parts.join(':'), 'pool key main/k1')).toThrow(/does not open under key id/);
  expect(() => secretBoxFrom(SECRET_B, undefined).open(sealed, 'pool key main/k1')).toThrow(/^KEYRELAY_SECRET: the store holds pool key main\/k1 sealed under key id/);
  expect(() => new SecretBox([]).open(sealed, 'pool key main/k1')).toThrow(/KEYRELAY_SECRET is not set/);
  expect(() => box.open('plain-text-key', 'pool key main/k1')).toThrow(/is not a sealed secret/);
});

it('opens under the previous secret during a rotation and seals under the new one', () => {
  const old = secretBoxFrom(SECRET_A, undefined).seal(KEY, 'p');
  const both = secretBoxFrom(SECRET_B, SECRET_A);
  expect(both.open(old, 'p')).toBe(KEY);
  expect(sealedKeyId(both.seal(KEY, 'p'))).toBe(parseSecret(SECRET_B, 'x').id);
});

it('takes 32 bytes in hex or base64 only, naming the setting, never quoting it', () => {
  for (const bad of ['', 'short', 'ab'.repeat(31), 'zz'.repeat(32), Buffer.alloc(16).toString('base64')]) {
    expect(() => parseSecret(bad, 'KEYRELAY_SECRET')).toThrow(/^KEYRELAY_SECRET: must be 32 random bytes/);
  }
  expect(() => secretBoxFrom(undefined, SECRET_A)).toThrow(/^KEYRELAY_SECRET_PREVIOUS: set only with KEYRELAY_SECRET/);
  let message = '';
  try {
    parseSecret('not-a-secret-value-0123', 'KEYRELAY_SECRET');
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message).toMatch(/^KEYRELAY_SECRET: /);
  expect(message).not.toContain('not-a-secret-value-0123');
});
