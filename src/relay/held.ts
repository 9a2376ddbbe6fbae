// Answers the gateway reads whole before it writes a byte of them, under a bound: upstream errors
// (judged by the failover policy, and masked: docs/reliability.md, case 12) and list answers (filtered per
// user). Everything else streams (forward.ts).
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

export interface Held {
  bytes: Buffer;
  /** The whole body is in `bytes`. */
  complete: boolean;
  /** The body broke off (a reset, a stall). */
  error?: Error;
}

/** Reads a body up to `limit` bytes; past that it stops reading and leaves the rest unread. */
export function readBounded(body: Readable, limit: number): Promise<Held> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (held: Omit<Held, 'bytes'>) => {
      body.off('data', onData).off('end', onEnd).off('error', onError);
      resolve({ bytes: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size), ...held });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        body.pause();
        done({ complete: false });
      }
    };
    const onEnd = () => done({ complete: true });
    const onError = (error: Error) => done({ complete: false, error });
    body.on('data', onData).once('end', onEnd).once('error', onError);
  });
}

/**
 * Writes a held answer. A whole one gets its own content-length (masking or filtering may have
 * changed its size); one that was too long to hold is written as far as it was read and the
 * connection cut, so that it cannot look complete.
 */
export function writeHeld(res: ServerResponse, status: number, headers: OutgoingHttpHeaders, bytes: Buffer, options: { complete: boolean; head: boolean }): void {
  const out = { ...headers };
  // A request whose body was not read to its end cannot share its connection with the next one.
  if (!res.req.complete) res.shouldKeepAlive = false;
  if (!options.head) {
    delete out['content-length'];
    if (options.complete) out['content-length'] = String(bytes.length);
  }
  res.writeHead(status, out);
  if (options.complete || options.head) {
    res.end(options.head ? undefined : bytes);
    return;
  }
  res.write(bytes, () => res.destroy());
}
