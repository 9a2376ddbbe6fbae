// Objects belong to the user and the pool key that created them (CONTRACT.md, The relay): a request
// naming one goes to that key, another user's object answers 404 as if it did not exist, and a
// list shows each user only their own. What counts as an object id, and where ids hide in paths,
// bodies and answers, is src/pool/objects.ts; who owns what is kept by the store.
//
// Lists are filtered, not gathered: the page the chosen key's upstream returns is shown less the
// items the user may not see, so a page can come out shorter than `limit` (even empty while
// `has_more` is true), and `first_id`/`last_id` follow the items kept. An SDK that pages with the
// last item's id carries on from there; one that stops at an empty page stops early.
import { GatewayError } from '../errors.js';
import { filterListAnswer, namedObjectIds } from '../pool/objects.js';
import { type ObjectOwners, resolveOwnership } from '../pool/object-owners.js';
import type { SelectRequest } from '../pool/pool.js';

export interface ObjectAccess {
  owners: ObjectOwners;
  /** Objects the gateway did not see created are open to every user (`pool.shareUnknownObjects`). */
  shareUnknown: boolean;
}

function noSuchObject(id: string): GatewayError {
  return new GatewayError('not_found', { message: `No such object: ${id}` });
}

/** The key a request must go to for the objects it names (`pathIds`, from its operation, then its
 * JSON body's); throws the 404 (or 400) it gets instead. */
export async function pinnedKey(access: ObjectAccess, userId: string, pathIds: string[], json: unknown): Promise<SelectRequest['pinned']> {
  const ids = namedObjectIds(pathIds, json);
  if (ids.length === 0) return undefined;
  const owners = await access.owners.lookupMany(ids);
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

function parseList(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** A list answer less what the user may not see; undefined when it is to be sent as it is. */
export async function filterList(access: ObjectAccess, userId: string, bytes: Buffer): Promise<Buffer | undefined> {
  const answer = parseList(bytes);
  const all = filterListAnswer(answer, () => true);
  if (!all) return undefined;
  const ids = (all.data as Array<{ id: string }>).map((item) => item.id);
  const owners = await access.owners.lookupMany(ids);
  const visible = (id: string): boolean => {
    const owner = owners.get(id);
    return owner ? owner.userId === userId : access.shareUnknown;
  };
  // Unchanged lists go out byte for byte, as the upstream sent them.
  if (ids.every(visible) && ids.length === (answer as { data: unknown[] }).data.length) return undefined;
  return Buffer.from(JSON.stringify(filterListAnswer(answer, visible)));
}
