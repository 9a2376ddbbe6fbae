// GET /v1/models as a user of the gateway sees it (docs/models.md). With `models.list: merged` (the
// default) the upstream's list, less the models the user may not use (route.ts filters it), gets
// an entry for each alias the user may use that an upstream serves, in OpenAI's shape: `created`
// and `owned_by` are the target's when the upstream lists it. With `models.list: upstream` the
// upstream's list is relayed, filtered as before, and aliases are not shown.
import type { Pool } from '../pool/pool.js';

interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/** Each alias some upstream serves, with the model that upstream is sent for it (the first that
 * serves it, as requests are routed). */
export function servedAliases(pool: Pick<Pool, 'upstreams' | 'upstreamFor'>): Map<string, string> {
  const served = new Map<string, string>();
  for (const upstream of pool.upstreams) {
    for (const name of upstream.aliases.keys()) {
      if (served.has(name)) continue;
      const routed = pool.upstreamFor(name);
      if (routed) served.set(name, routed.modelFor(name));
    }
  }
  return served;
}

function listOf(bytes: Buffer): { object?: unknown; data: unknown[] } | undefined {
  try {
    const value = JSON.parse(bytes.toString('utf8')) as unknown;
    if (value === null || typeof value !== 'object' || !Array.isArray((value as { data?: unknown }).data)) return undefined;
    return value as { data: unknown[] };
  } catch {
    return undefined;
  }
}

const idOf = (item: unknown): unknown => (item !== null && typeof item === 'object' ? (item as { id?: unknown }).id : undefined);

/**
 * The list `shown` (the upstream's page, filtered for the user) with the user's aliases added;
 * undefined when there is none to add. `upstream`: the page as the upstream sent it, where a
 * target the user may not see still gives its alias its `created` and `owned_by`.
 */
export function withAliases(shown: Buffer, upstream: Buffer, aliases: ReadonlyMap<string, string>, allowed: (model: string) => boolean): Buffer | undefined {
  if (aliases.size === 0) return undefined;
  const list = listOf(shown);
  if (!list) return undefined;
  const ids = new Set(list.data.map(idOf));
  const targets = new Map<unknown, Record<string, unknown>>();
  for (const item of listOf(upstream)?.data ?? []) if (item !== null && typeof item === 'object') targets.set(idOf(item), item as Record<string, unknown>);
  const added: ModelEntry[] = [];
  for (const [name, target] of aliases) {
    if (ids.has(name) || !allowed(name)) continue;
    const known = targets.get(target);
    added.push({
      id: name,
      object: 'model',
      created: typeof known?.created === 'number' ? known.created : 0,
      owned_by: typeof known?.owned_by === 'string' ? known.owned_by : 'keyrelay',
    });
  }
  if (added.length === 0) return undefined;
  return Buffer.from(JSON.stringify({ ...list, object: list.object ?? 'list', data: [...list.data, ...added] }));
}
