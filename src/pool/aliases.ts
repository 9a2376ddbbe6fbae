// Model aliases (docs/models.md): a public model name that clients send, and the name an upstream
// knows the model by. The settings' top-level `aliases` hold for every upstream; an upstream's own
// `aliases` are laid over them, and win, for that upstream. An alias may name another alias: the
// chain is followed to its end, so a cycle, an alias equal to its target and an empty name are
// refused when the table is set (at start, naming the setting; through the admin API, with a 400).
//
// What a request's alias means is decided once, by `decideModel`, after the request's body and its
// objects are read: the public name (routing, the user's allowed models, the request log's `model`)
// and the upstream's (the body sent, prices, the log's `upstreamModel`). Later steps read that.

export type AliasTable = Readonly<Record<string, string>>;

/** Longest alias name or target: the bound of a model a request may name (src/relay/body.ts). */
export const MAX_ALIAS_LENGTH = 256;
/** Most aliases one table may hold: each is looked at when GET /v1/models lists a user's models. */
export const MAX_ALIASES = 1000;

/** Why `table` (an upstream's over `top`, when given) cannot be used, or undefined. */
export function aliasProblem(table: AliasTable, top: AliasTable = {}): string | undefined {
  const entries = Object.entries(table);
  if (entries.length > MAX_ALIASES) return `at most ${MAX_ALIASES} aliases`;
  for (const [name, target] of entries) {
    if (name.trim() === '' || name !== name.trim()) return 'an alias name must not be empty or begin or end with white space';
    if (typeof target !== 'string' || target.trim() === '' || target !== target.trim()) {
      return `the alias ${JSON.stringify(name)} must map to a model name without surrounding white space`;
    }
    if (name.length > MAX_ALIAS_LENGTH || target.length > MAX_ALIAS_LENGTH) return `alias names and targets must be at most ${MAX_ALIAS_LENGTH} characters`;
    if (name === target) return `the alias ${JSON.stringify(name)} names itself`;
  }
  const merged = mergeAliases(top, table);
  // The top-level table was checked on its own: a cycle here runs through one of the table's names.
  for (const name of Object.keys(table)) {
    const seen = new Set([name]);
    for (let at = merged[name]; at !== undefined && Object.hasOwn(merged, at); at = merged[at]) {
      if (seen.has(at)) return `the aliases ${[...seen, at].map((n) => JSON.stringify(n)).join(' -> ')} form a cycle`;
      seen.add(at);
    }
  }
  return undefined;
}

/** The table an upstream uses: the top-level one with the upstream's own laid over it. */
export function mergeAliases(top: AliasTable | undefined, own: AliasTable | undefined): AliasTable {
  if (!own || Object.keys(own).length === 0) return top ?? {};
  if (!top || Object.keys(top).length === 0) return own;
  return { ...top, ...own };
}

/** Each alias of a table with the model at the end of its chain (the table has no cycle). */
export function resolveAliases(table: AliasTable): ReadonlyMap<string, string> {
  const resolved = new Map<string, string>();
  for (const name of Object.keys(table)) {
    let target = table[name] as string;
    for (let steps = 0; Object.hasOwn(table, target) && steps < MAX_ALIASES; steps++) target = table[target] as string;
    resolved.set(name, target);
  }
  return resolved;
}

/** What a request's model is, decided once: `public` as the client named it, `upstream` as the
 * chosen upstream knows it (equal when no alias applies). Both undefined when it names none. */
export interface ModelDecision {
  readonly public: string | undefined;
  readonly upstream: string | undefined;
  /** The alias replaced the name: the body (or path, or query) is sent with `upstream` in it. */
  readonly aliased: boolean;
}

export const NO_MODEL_DECISION: ModelDecision = Object.freeze({ public: undefined, upstream: undefined, aliased: false });

/** What the pool tells of the upstream a model goes to (pool.ts). */
export interface AliasSource {
  upstreamFor(model: string | undefined): { modelFor(model: string): string } | undefined;
  upstreamById(id: string): { modelFor(model: string): string } | undefined;
}

/**
 * The decision for `model`, the name the client gave (not an operation's default, which no client
 * wrote). The upstream is the one the request will go to: the pinned key's (an object it names
 * lives there), else the first that serves the model, as the pool routes it (pool.ts).
 */
export function decideModel(pool: AliasSource, model: string | undefined, pinnedUpstream?: string): ModelDecision {
  if (model === undefined) return NO_MODEL_DECISION;
  const upstream = pinnedUpstream === undefined ? pool.upstreamFor(model) : pool.upstreamById(pinnedUpstream);
  const sent = upstream?.modelFor(model) ?? model;
  return { public: model, upstream: sent, aliased: sent !== model };
}
