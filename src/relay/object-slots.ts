// Before a request that may create objects is sent, its user takes a slot among their objects
// (src/pool/object-owners.ts): a user who already holds `pool.maxObjectsPerUser` objects gets
// 429 too_many_objects, and the upstream never sees the request, so no object is made that the
// gateway would have to remember. The slot is given back once the answer is read; by then what
// the answer created is recorded and counts instead.
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import type { ObjectOwners } from '../pool/object-owners.js';

export interface ObjectSlots {
  owners: ObjectOwners;
  /** pool.maxObjectsPerUser */
  max: number;
  /** How long a slot lasts if its process dies before giving it back (quota.leaseMs). */
  leaseMs: number;
  log: Logger;
}

/** Takes the request's slot, or throws the 429; resolves the function that gives it back. */
export async function holdObjectSlot(slots: ObjectSlots, userId: string, requestId: string): Promise<() => void> {
  if (!(await slots.owners.hold(userId, requestId, slots.max, slots.leaseMs))) {
    throw new GatewayError('too_many_objects', {
      message: `You hold ${slots.max} objects created through this gateway (files, vector stores, responses …), as many as a user may. Delete some before creating more.`,
      // Retrying cannot help until the user deletes something.
      headers: { 'x-should-retry': 'false' },
    });
  }
  return () => {
    // Not given back, it lapses after the lease: the user is short of one slot until then.
    slots.owners.release(userId, requestId).catch((err: unknown) => {
      slots.log.warn({ requestId, userId, reason: (err as Error).message }, 'could not give back an object slot: it lapses after the lease');
    });
  };
}
