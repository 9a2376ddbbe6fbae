// Which requests should share a pool key because they share a prompt cache (docs/key-pool.md,
// Prompt cache affinity). OpenAI keeps its prompt cache per project, so per pool key: requests of
// one conversation sent to different keys pay the full input price for a prefix one key has
// cached. Read once from the parsed body, for the three operations that take a prompt, in this
// order:
//
//   prompt_cache_key             the client's own grouping, as OpenAI reads it
//   safety_identifier, or user   one end user's requests
//   the prompt's leading text    see PREFIX_PARTS
//
// The answer is a 32-bit hash the pool ranks its keys by (src/pool/rendezvous.ts). Only strings
// are read, each cut to PREFIX_CHARS, so a request costs at most a few KB of hashing here (see
// hashPrefix).
import { createHash } from 'node:crypto';
import { GatewayError } from '../errors.js';
import type { Operation } from '../operations/match.js';
import { type Affinity, hashText } from '../pool/rendezvous.js';

/**
 * Characters read of each part of a prompt's start. OpenAI caches prompts of 1,024 tokens or more
 * (some 4,000 characters), so the first 1,024 characters of a cacheable prompt do not change as
 * its conversation grows; a shorter prompt is not cached anyway.
 */
export const PREFIX_CHARS = 1024;
/** Values visited in one part, whatever its shape: a part of many empty objects stays cheap. */
const MAX_VALUES = 256;

/**
 * The parts of a prompt hashed, by operation. Each is read up to PREFIX_CHARS:
 * - chat completions: `messages[0]`, and when it is a `system` or `developer` message, also the
 *   first message of another role, so that conversations sharing a system prompt can still spread
 *   over the keys (each key then caches that system prompt once);
 * - responses: `instructions`, and the first input item (the same way) or the start of `input`
 *   when it is a string;
 * - completions: `prompt` (the first of several prompts).
 */
const PREFIX_PARTS: Record<string, (json: Record<string, unknown>) => unknown[]> = {
  createChatCompletion: (json) => leadingTurn(json.messages),
  createResponse: (json) => [json.instructions, ...(typeof json.input === 'string' ? [json.input] : leadingTurn(json.input))],
  createCompletion: (json) => [Array.isArray(json.prompt) && typeof json.prompt[0] !== 'number' ? json.prompt[0] : json.prompt],
};

/** The operations whose requests get an affinity. */
export const AFFINITY_OPERATIONS: ReadonlySet<string> = new Set(Object.keys(PREFIX_PARTS));

const INSTRUCTION_ROLES: ReadonlySet<unknown> = new Set(['system', 'developer']);

function leadingTurn(items: unknown): unknown[] {
  if (!Array.isArray(items) || items.length === 0) return [];
  const first: unknown = items[0];
  if (!INSTRUCTION_ROLES.has(roleOf(first))) return [first];
  for (let i = 1; i < items.length && i < 64; i++) {
    if (!INSTRUCTION_ROLES.has(roleOf(items[i]))) return [first, items[i]];
  }
  return [first];
}

const roleOf = (item: unknown): unknown => (item !== null && typeof item === 'object' ? (item as { role?: unknown }).role : undefined);

/** The text of one part, strings and names in order, cut at PREFIX_CHARS. */
class Prefix {
  text = '';
  private values = 0;

  private full(): boolean {
    return this.text.length >= PREFIX_CHARS || this.values >= MAX_VALUES;
  }

  add(value: unknown): void {
    if (this.full()) return;
    this.values++;
    if (typeof value === 'string') this.text += value.slice(0, PREFIX_CHARS - this.text.length);
    else if (typeof value === 'number' || typeof value === 'boolean') this.text += String(value);
    else if (Array.isArray(value)) {
      for (let i = 0; i < value.length && !this.full(); i++) {
        this.text += '\u0001';
        this.add(value[i]);
      }
    } else if (value !== null && typeof value === 'object') {
      for (const name in value) {
        if (this.full()) return;
        this.text += `\u0002${name.slice(0, 64)}\u0003`;
        this.add((value as Record<string, unknown>)[name]);
      }
    }
  }
}

/** Past this, SHA-1 (native) is the cheaper hash; below it, FNV-1a in JavaScript, which makes no
 * Buffer and no hash object. Measured (CPU time, Node 20): about 1 µs for a short prompt, 4 µs for
 * 2 KB, where parsing a 46 KB chat body takes some 36 µs. */
const NATIVE_HASH_CHARS = 256;

function hashPrefix(text: string): number {
  return text.length <= NATIVE_HASH_CHARS ? hashText(text) : createHash('sha1').update(text).digest().readUInt32BE(0);
}

/** A field that names a grouping: a string, else refused (OpenAI refuses it too). */
function grouping(json: Record<string, unknown>, field: string): string | undefined {
  const value = json[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    throw new GatewayError('invalid_request', { message: `\`${field}\` must be a string.`, param: field });
  }
  return value === '' ? undefined : value.slice(0, PREFIX_CHARS);
}

/** A request's affinity, worked out when first asked for (the pool asks only when it has more
 * than one key to choose from) and kept for its retries. */
export type AffinityOf = () => Affinity | undefined;

/**
 * The request's affinity, or undefined when it has nothing to hash (the upstream's strategy then
 * picks). `whole`: the body was parsed whole; a body too large to parse shows only its top-level
 * settings (src/relay/json-digest.ts), so it can have a key or a user but no prefix. The groupings
 * are checked here, at once (a bad one is refused whatever the pool holds); the prompt's start is
 * read and hashed only when the pool asks.
 *
 * `userId`, the gateway user's, is hashed first: the same values sent by two users rank the keys
 * apart, so no user can send another's conversation key (or prompt start) to find, in their own
 * request log, the pool key that conversation uses, nor aim their own traffic at it.
 */
export function affinityOf(operation: Operation, json: Record<string, unknown> | undefined, whole: boolean, userId: string): AffinityOf | undefined {
  const parts = PREFIX_PARTS[operation.id];
  if (!parts || !json) return undefined;
  const scope = `${userId}\u0000`;
  const key = grouping(json, 'prompt_cache_key');
  if (key !== undefined) return once(() => ({ source: 'prompt_cache_key', hash: hashText(`${scope}k${key}`) }));
  const user = grouping(json, 'safety_identifier') ?? grouping(json, 'user');
  if (user !== undefined) return once(() => ({ source: 'user', hash: hashText(`${scope}u${user}`) }));
  if (!whole) return undefined;
  return once(() => prefixAffinity(parts(json), scope));
}

function once(work: () => Affinity | undefined): AffinityOf {
  let done = false;
  let value: Affinity | undefined;
  return () => {
    if (!done) {
      value = work();
      done = true;
    }
    return value;
  };
}

function prefixAffinity(parts: unknown[], scope: string): Affinity | undefined {
  // Each part has its own PREFIX_CHARS: a long system prompt leaves room for the first user turn.
  let text = scope;
  for (const part of parts) {
    const prefix = new Prefix();
    prefix.add(part);
    text += `\u0004${prefix.text}`;
  }
  // Nothing but separators: no text to group by.
  return /[^\u0001-\u0004]/.test(text.slice(scope.length)) ? { source: 'prefix', hash: hashPrefix(text) } : undefined;
}
