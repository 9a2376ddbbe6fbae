// Objects belong to the user and the pool key that created them (README, "The key pool"): a request
// naming one goes to that key, another user's object answers 404 as if it did not exist, and a
// list shows each user only their own. What counts as an object id, and where ids hide in paths,
// bodies and answers, is src/pool/objects.ts; who owns what is kept by the store.
//
// Lists are filtered, not gathered: the page the chosen key's upstream returns is shown less the
// items the user may not see, so a page can come out shorter than `limit` (even empty while
// `has_more` is true), and `first_id`/`last_id` follow the items kept. An SDK that pages with the
// last item's id carries on from there; one that stops at an empty page stops early.
//
// Lists also teach the gateway owners it could not see being made: a ChatKit thread listed with a
// `user` the caller's session claimed becomes the caller's, and the fine-tuned model of the
// caller's job becomes the caller's, on the job's key.
import { GatewayError } from '../errors.js';
import { checkJsonShape } from './json-shape.js';
import { claimedNames } from '../pool/object-operations.js';
import {
  type ObjectKind,
  filterListAnswer,
  fineTunedModelsIn,
  namedObjectIds,
  objectKindOf,
  ownerHintOf,
} from '../pool/objects.js';
import { type ObjectOwner, type ObjectOwners, resolveOwnership } from '../pool/object-owners.js';
import type { SelectRequest } from '../pool/pool.js';
import type { Operation } from '../operations/match.js';

export interface ObjectAccess {
  owners: ObjectOwners;
  /** Objects the gateway did not see created are open to every user (`pool.shareUnknownObjects`). */
  shareUnknown: boolean;
}

function noSuchObject(id: string): GatewayError {
  // A model one may not see is answered as OpenAI answers a model that does not exist.
  if (objectKindOf(id) === 'fine_tuned_model') {
    return new GatewayError('model_not_found', { message: `The model \`${id}\` does not exist or you do not have access to it.`, param: 'model' });
  }
  return new GatewayError('not_found', { message: `No such object: ${id}` });
}

/** The key a request must go to for the objects it names (`pathIds`, from its operation, then its
 * JSON body's: `bodyIds` when the body was read without a tree) and the names it claims; throws
 * the 404 (or 400, 409) it gets instead. */
export async function pinnedKey(
  access: ObjectAccess,
  userId: string,
  operation: Operation,
  pathIds: string[],
  json: unknown,
  bodyIds?: string[],
): Promise<SelectRequest['pinned']> {
  const ids = bodyIds ? [...new Set([...pathIds, ...bodyIds])] : namedObjectIds(pathIds, json);
  const claims = claimedNames(operation, json);
  if (ids.length === 0 && claims.length === 0) return undefined;
  const owners = await access.owners.lookupMany([...ids, ...claims]);
  for (const claim of claims) {
    const owner = owners.get(claim);
    if (owner && owner.userId !== userId) {
      throw new GatewayError('conflict', {
        message: 'This ChatKit `user` belongs to another user of this gateway: its threads are theirs. Pick another user identifier.',
        param: 'user',
      });
    }
    // The caller's own: its sessions stay on the key that holds its threads.
    if (owner) ids.push(claim);
  }
  const ownership = resolveOwnership(ids, owners, userId, { shareUnknown: access.shareUnknown });
  switch (ownership.kind) {
    case 'free':
      return undefined;
    case 'pinned':
      return { upstreamId: ownership.upstreamId, keyId: ownership.keyId };
    case 'foreign':
    case 'unknown':
      throw noSuchObject(ownership.id);
    case 'split':
      throw new GatewayError('invalid_request', {
        message: `The objects ${ownership.ids.join(', ')} were created with different upstream keys: no one request can use them together.`,
      });
  }
}

const NOT_JSON = Symbol('not JSON');

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** No key given twice in one object (nor a page too deep or too large to tell). */
function unambiguous(bytes: Buffer): boolean {
  try {
    checkJsonShape(bytes);
    return true;
  } catch (err) {
    if (err instanceof GatewayError) return false;
    throw err;
  }
}

function parseList(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return NOT_JSON;
  }
}

/**
 * A list of `kind` objects less what the user may not see; undefined when it is to be sent as it
 * is; throws upstream_invalid_response for an answer that is not JSON. Items of other kinds pass
 * (the base models of GET /models are everyone's). Without a kind (a list of an operation the
 * table does not know), items of every tracked kind are filtered.
 */
export async function filterList(
  access: ObjectAccess,
  userId: string,
  kind: ObjectKind | undefined,
  bytes: Buffer,
  /** Further, which items the user may see at all (GET /models: only the models they may use). */
  allowed?: (id: string) => boolean,
): Promise<Buffer | undefined> {
  const answer = parseList(bytes);
  // Not JSON (cut, garbage): it cannot be filtered, so it is not passed on, lest other users'
  // objects go out with it. JSON of a shape with no `data` at all has no items to filter: it passes.
  if (answer === NOT_JSON) throw new GatewayError('upstream_invalid_response', { message: 'The upstream answered a list request with a body that is not JSON.' });
  // A `data` that is there but is no list (an object, a page inside the page) holds items the
  // filter cannot tell apart: refused as a body that is not JSON is.
  if (isObject(answer) && 'data' in answer && !Array.isArray(answer.data)) {
    throw new GatewayError('upstream_invalid_response', { message: 'The upstream answered a list request with a `data` that is not a list.' });
  }
  const all = filterListAnswer(answer, () => true);
  if (!all) return undefined;
  const filtered = (id: string): boolean => (kind === undefined ? objectKindOf(id) !== undefined : objectKindOf(id) === kind);
  const items = (all.data as Array<{ id: string }>).filter((item) => filtered(item.id));
  const hints = new Map<string, string>();
  for (const item of items) {
    const hint = kind === undefined ? undefined : ownerHintOf(kind, item);
    if (hint !== undefined) hints.set(item.id, hint);
  }
  const models = new Map(items.map((item) => [item.id, fineTunedModelsIn(item)]));
  const names = new Set([...items.map((item) => item.id), ...hints.values(), ...[...models.values()].flat()]);
  const found = await access.owners.lookupMany([...names]);
  const owners = new Map<string, ObjectOwner>();
  const learned: Array<Promise<void>> = [];
  for (const item of items) {
    const hint = hints.get(item.id);
    const owner = found.get(item.id) ?? (hint === undefined ? undefined : found.get(hint));
    if (!owner) continue;
    owners.set(item.id, owner);
    if (owner.userId !== userId) continue;
    // Recorded before the page goes out, so that the caller's next request finds them.
    if (!found.has(item.id)) learned.push(access.owners.record(item.id, owner));
    for (const model of models.get(item.id) ?? []) if (!found.has(model)) learned.push(access.owners.record(model, owner));
  }
  await Promise.all(learned);
  const visible = (id: string): boolean => {
    if (allowed && !allowed(id)) return false;
    if (!filtered(id)) return true;
    const owner = owners.get(id);
    return owner ? owner.userId === userId : access.shareUnknown;
  };
  const ids = (all.data as Array<{ id: string }>).map((item) => item.id);
  // Unchanged lists go out byte for byte, as the upstream sent them; but not one that gives a key
  // twice in an object: JSON.parse kept the last, the filter judged that, and the bytes would still
  // carry the other (another user's items in a first `data`, another id in an item). It goes out
  // as the gateway read it.
  if (ids.every(visible) && ids.length === (answer as { data: unknown[] }).data.length && unambiguous(bytes)) return undefined;
  return Buffer.from(JSON.stringify(filterListAnswer(answer, visible)));
}
