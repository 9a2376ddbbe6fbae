// keyrelay keys create|list|revoke
import { isPast } from '../iso-time.js';
import type { KeyRecord } from '../store/types.js';
import type { Command } from './command.js';
import { answer, fields, orDash, table } from './format.js';
import { isoTime, text } from './options.js';

/** A key as the admin API shows it: never the digest; `key` only in the answer to its creation. */
export type ApiKey = Omit<KeyRecord, 'digest'>;
export type CreatedKey = ApiKey & { key: string };

const ONCE_NOTE = 'This is the only time the key is shown: store it now. keyrelay keeps only a digest of it.';

export function keyState(key: ApiKey, now = Date.now()): string {
  if (key.revokedAt !== undefined) return 'revoked';
  if (isPast(key.expiresAt, now)) return 'expired';
  return 'active';
}

function created(key: CreatedKey): string {
  return (
    `Created key ${key.id} for user ${key.userId}.\n\n` +
    `    ${key.key}\n\n` +
    `${ONCE_NOTE}\n` +
    `Lists show it by its prefix, ${key.prefix}.\n`
  );
}

export const keysCommands: readonly Command[] = [
  {
    path: ['keys', 'create'],
    args: ['<userId>'],
    options: {
      name: { type: 'string', value: 'NAME', help: 'a name to recognise the key by' },
      'expires-at': { type: 'string', value: 'ISO', help: 'when the key stops working' },
      'allow-past': { type: 'boolean', help: 'accept an --expires-at already past (the key starts expired)' },
    },
    summary: 'create a key for a user; the key is printed once',
    async run(ctx, [userId], options) {
      const body = { name: text(options, 'name'), expiresAt: isoTime(options, 'expires-at') };
      const query = options['allow-past'] === true ? '?allowPast=true' : '';
      const key = await ctx.admin().post<CreatedKey>(`/users/${encodeURIComponent(userId ?? '')}/keys${query}`, body);
      // With --json, stdout stays pure JSON; the warning still reaches the person.
      if (ctx.json) ctx.io.stderr.write(`${ONCE_NOTE}\n`);
      return answer(ctx, key, created);
    },
  },
  {
    path: ['keys', 'list'],
    args: ['<userId>'],
    summary: "list a user's keys (never the keys themselves)",
    async run(ctx, [userId]) {
      const page = await ctx.admin().get<{ data: ApiKey[] }>(`/users/${encodeURIComponent(userId ?? '')}/keys`);
      return answer(ctx, page, ({ data }) => {
        if (data.length === 0) return `User ${userId} has no keys. Create one with: keyrelay keys create ${userId}\n`;
        const rows = data.map((k) => [k.id, k.prefix, orDash(k.name), keyState(k), k.createdAt, k.expiresAt ?? 'never', orDash(k.revokedAt)]);
        return table(['ID', 'PREFIX', 'NAME', 'STATE', 'CREATED', 'EXPIRES', 'REVOKED'], rows);
      });
    },
  },
  {
    path: ['keys', 'revoke'],
    args: ['<keyId>'],
    summary: 'revoke a key; it stops working at once',
    async run(ctx, [keyId]) {
      const key = await ctx.admin().delete<ApiKey>(`/keys/${encodeURIComponent(keyId ?? '')}`);
      return answer(ctx, key, (k) =>
        `Revoked key ${k.id} of user ${k.userId}.\n` + fields([['prefix', k.prefix], ['name', orDash(k.name)], ['revokedAt', orDash(k.revokedAt)]]),
      );
    },
  },
];
