// keyrelay upstreams [enable|disable]: the key pool as GET /admin/upstreams shows it, and the
// admin's hand on one pool key (docs/key-pool.md, Admin).
import type { Command } from './command.js';
import { answer, orDash, table } from './format.js';

/** A pool key as the admin API shows it: never the secret, its last 4 characters only. */
export interface ApiPoolKey {
  id: string;
  last4: string;
  state: 'active' | 'cooling' | 'disabled';
  /** When a cooling key is usable again or a disabled key is next probed; null otherwise. */
  until: string | null;
  reason: string | null;
  inFlight: number;
  requests: number;
  failures: number;
  consecutiveFailures: number;
}

export interface ApiUpstream {
  id: string;
  strategy: string;
  keys: ApiPoolKey[];
}

/** The answer to .../enable and .../disable: the key, with its upstream. */
export type ChangedPoolKey = ApiPoolKey & { upstream: string };

const HEADER = ['UPSTREAM', 'KEY', 'LAST4', 'STATE', 'UNTIL', 'REASON', 'IN FLIGHT', 'REQUESTS', 'FAILURES'] as const;

// The ellipsis says that the key goes on before these characters: they are its end, not the key.
const last4 = (key: ApiPoolKey): string => `…${key.last4}`;

/** Failures in a row are what open a key's circuit: worth seeing beside the total. */
function failures(key: ApiPoolKey): string {
  return key.consecutiveFailures > 0 ? `${key.failures} (${key.consecutiveFailures} in a row)` : String(key.failures);
}

function keyRow(upstream: string, key: ApiPoolKey): string[] {
  return [upstream, key.id, last4(key), key.state, orDash(key.until), orDash(key.reason), String(key.inFlight), String(key.requests), failures(key)];
}

export function poolTable(upstreams: readonly ApiUpstream[]): string {
  const rows = upstreams.flatMap((u) => u.keys.map((k) => keyRow(u.id, k)));
  if (rows.length === 0) {
    return 'The pool has no keys. Set OPENAI_API_KEYS, or list keys under upstreams in the settings file, and restart the gateway.\n';
  }
  // An upstream without keys has no row; say so rather than let it vanish from the list.
  const empty = upstreams.filter((u) => u.keys.length === 0).map((u) => `Upstream ${u.id} has no keys.\n`);
  return table(HEADER, rows) + (empty.length ? `\n${empty.join('')}` : '');
}

function changed(key: ChangedPoolKey): string {
  const what = `pool key ${key.id} (${last4(key)}) of upstream ${key.upstream}`;
  if (key.state === 'disabled') return `Disabled ${what}: it takes no requests, in any gateway process, until enabled.\n`;
  if (key.state === 'active') return `Enabled ${what}: it takes requests again.\n`;
  // Enabled, yet its last answer said its rate limit is spent: it rests until the upstream's reset.
  return `Enabled ${what}: it is ${key.state} until ${orDash(key.until)} (${orDash(key.reason)}).\n`;
}

const path = (upstream: string, keyId: string, action: string): string =>
  `/upstreams/${encodeURIComponent(upstream)}/keys/${encodeURIComponent(keyId)}/${action}`;

export const upstreamsCommands: readonly Command[] = [
  {
    path: ['upstreams'],
    args: [],
    summary: 'the key pool: each pool key with its state, until when, why, and its counts',
    async run(ctx) {
      const page = await ctx.admin().get<{ data: ApiUpstream[] }>('/upstreams');
      return answer(ctx, page, ({ data }) => poolTable(data));
    },
  },
  ...(['enable', 'disable'] as const).map(
    (action): Command => ({
      path: ['upstreams', action],
      args: ['<upstream>', '<keyId>'],
      summary:
        action === 'enable'
          ? 'put a pool key back into service, whatever set it aside'
          : 'take a pool key out of service by hand, until it is enabled again',
      async run(ctx, [upstream = '', keyId = '']) {
        const key = await ctx.admin().post<ChangedPoolKey>(path(upstream, keyId, action), undefined);
        return answer(ctx, key, changed);
      },
    }),
  ),
];
