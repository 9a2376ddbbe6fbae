// Request and response bodies in the kept request log, only when an operator turns it on
// (`logging.bodies`): key material masked (relay/mask.ts), cut to `logging.bodyBytes`. Only JSON
// bodies the gateway reads anyway are kept from requests; uploads stream through untouched.
import type { RequestBody } from '../relay/body.js';
import type { ResponseTap } from '../relay/forward.js';
import type { Masker } from '../relay/mask.js';

const REPLACEMENT = '\ufffd';
// Masking looks this far past the cut, so that a key that straddles it is masked whole before
// the cut, never left half visible. Keys are far shorter.
const MASK_MARGIN = 256;

/** UTF-8 text of at most `limit` bytes, without a character cut in two at the end. */
function cut(text: string, limit: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= limit) return text;
  const head = bytes.subarray(0, limit).toString('utf8');
  return head.endsWith(REPLACEMENT) ? head.slice(0, -1) : head;
}

/** The first `limit` bytes as text, masked; binary content is described, not kept. */
export function bodyText(bytes: Buffer, total: number, limit: number, masker: Masker): string {
  const window = bytes.subarray(0, limit + MASK_MARGIN);
  if (window.includes(0)) return `[binary, ${total} bytes]`;
  let text = window.toString('utf8');
  // A character cut in two at the window's end decodes as U+FFFD: only one elsewhere means binary.
  if (total > window.length && text.endsWith(REPLACEMENT)) text = text.slice(0, -1);
  if (text.includes(REPLACEMENT)) return `[binary, ${total} bytes]`;
  const kept = cut(masker.text(text), limit);
  return total > limit ? `${kept}…[${total} bytes]` : kept;
}

export interface BodyCapture {
  request(body: RequestBody): string | undefined;
  /** The tap the relay uses, seeing what the client gets; `text()` after the answer ended. */
  response(tap: ResponseTap): { tap: ResponseTap; text(): string | undefined };
}

const OFF: BodyCapture = {
  request: () => undefined,
  response: (tap) => ({ tap, text: () => undefined }),
};

export function createBodyCapture(enabled: boolean, limit: number, masker: Masker): BodyCapture {
  if (!enabled) return OFF;
  return {
    request(body) {
      if (body.kind !== 'buffered') return undefined;
      return bodyText(body.bytes, body.bytes.length, limit, masker);
    },
    response(inner) {
      const kept: Buffer[] = [];
      let keptBytes = 0;
      let total = 0;
      let started = false;
      const tap: ResponseTap = {
        start(status, headers) {
          started = true;
          inner.start(status, headers);
        },
        chunk(chunk) {
          const out = inner.chunk(chunk);
          total += out.length;
          if (keptBytes < limit + MASK_MARGIN) {
            const part = out.subarray(0, limit + MASK_MARGIN - keptBytes);
            // Copied: a slice would keep the whole upstream chunk alive as long as the record.
            kept.push(Buffer.from(part));
            keptBytes += part.length;
          }
          return out;
        },
        end(complete) {
          inner.end(complete);
        },
      };
      return { tap, text: () => (started ? bodyText(Buffer.concat(kept), total, limit, masker) : undefined) };
    },
  };
}
