// Secrets the gateway keeps in its store (pool keys and proxy passwords added at run time) are
// sealed with AES-256-GCM under KEYRELAY_SECRET, never stored in the clear. Each sealed value
// names the key id it was sealed under (the first 8 hex digits of SHA-256 of the secret, which
// says nothing of it), so that during a rotation a process holding the new secret and the previous
// one (KEYRELAY_SECRET_PREVIOUS) opens both, and `keyrelay secrets rotate` can tell what is left to
// re-seal. The additional data binds a value to where it is kept (`upstream/key`): a sealed value
// copied to another key of the store does not open there.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const PREFIX = 'kr1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SecretError extends Error {
  override name = 'SecretError';
}

export interface SealKey {
  readonly id: string;
  readonly bytes: Buffer;
}

/** 32 bytes written as 64 hex digits or as base64 (44 characters with padding, 43 without). */
export function parseSecret(text: string, setting: string): SealKey {
  const trimmed = text.trim();
  let bytes: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) bytes = Buffer.from(trimmed, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)) bytes = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (bytes?.length !== 32) {
    throw new SecretError(`${setting}: must be 32 random bytes written as 64 hex digits or in base64 (openssl rand -hex 32)`);
  }
  return { id: createHash('sha256').update(bytes).digest('hex').slice(0, 8), bytes };
}

/** The key id a sealed value names, or undefined when the text is not a sealed value. */
export function sealedKeyId(sealed: string): string | undefined {
  const parts = sealed.split(':');
  return parts.length === 5 && parts[0] === PREFIX ? parts[1] : undefined;
}

export class SecretBox {
  /** The first seals; every one opens. */
  constructor(private readonly keys: readonly SealKey[]) {}

  get configured(): boolean {
    return this.keys.length > 0;
  }

  /** The key id new values are sealed under; undefined without KEYRELAY_SECRET. */
  get currentId(): string | undefined {
    return this.keys[0]?.id;
  }

  seal(plain: string, where: string): string {
    const key = this.keys[0];
    if (!key) throw new SecretError('KEYRELAY_SECRET is not set');
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key.bytes, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(where, 'utf8'));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [PREFIX, key.id, iv.toString('base64'), body.toString('base64'), cipher.getAuthTag().toString('base64')].join(':');
  }

  /** Throws SecretError naming the setting when no configured secret opens the value. */
  open(sealed: string, where: string): string {
    const parts = sealed.split(':');
    if (parts.length !== 5 || parts[0] !== PREFIX) throw new SecretError(`the stored value of ${where} is not a sealed secret`);
    const [, id, iv, body, tag] = parts as [string, string, string, string, string];
    const key = this.keys.find((k) => k.id === id);
    if (!key) {
      const have = this.keys.length === 0 ? 'KEYRELAY_SECRET is not set' : `KEYRELAY_SECRET has key id ${this.keys.map((k) => k.id).join(', ')}`;
      throw new SecretError(`KEYRELAY_SECRET: the store holds ${where} sealed under key id ${id}, and ${have}; set the secret it was sealed with (or keep it as KEYRELAY_SECRET_PREVIOUS during a rotation)`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.bytes, Buffer.from(iv, 'base64'), { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(where, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretError(`KEYRELAY_SECRET: the stored value of ${where} does not open under key id ${id}: it was altered, or sealed with another secret of the same id`);
    }
  }
}

/** The box of the settings: KEYRELAY_SECRET seals, it and KEYRELAY_SECRET_PREVIOUS open. */
export function secretBoxFrom(secret: string | undefined, previous: string | undefined): SecretBox {
  const keys: SealKey[] = [];
  if (secret) keys.push(parseSecret(secret, 'KEYRELAY_SECRET'));
  if (previous) {
    if (!secret) throw new SecretError('KEYRELAY_SECRET_PREVIOUS: set only with KEYRELAY_SECRET, the secret that replaces it');
    keys.push(parseSecret(previous, 'KEYRELAY_SECRET_PREVIOUS'));
  }
  return new SecretBox(keys);
}
