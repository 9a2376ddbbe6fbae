// Requests the fake upstream holds until the test lets them go: a request whose JSON body carries
// `metadata.hold` waits in `held` (as its release) until released or until its client goes away.
import type { RecordedRequest } from '../../src/dev/fake-upstream.js';

/** The request's `metadata.hold`, or undefined for a request not to hold. */
export function holdMark(req: RecordedRequest): string | undefined {
  return (req.json as { metadata?: { hold?: string } } | undefined)?.metadata?.hold;
}

/** Resolves once the test calls the release this adds to `held`; a closed request leaves `held`. */
export function holdUntilReleased(req: RecordedRequest, held: Set<() => void>): Promise<void> {
  return new Promise<void>((resolve) => {
    held.add(resolve);
    void req.closed.then(() => held.delete(resolve));
  });
}
