// The request target is checked once, as raw bytes, before routing: what auth sees, what the
// router dispatches on and what goes upstream are the same string, so `..`, encoded slashes and
// the like can never reach anything but the upstream's /v1 (RELIABILITY.md case 33).
import { BoundedMap } from '../bounded-map.js';
import { GatewayError } from '../errors.js';

// RFC 3986 pchar without `%`, which is checked escape by escape below.
const SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%]+$/;
const ESCAPE = /%([0-9A-Fa-f]{2})?/g;

function escapeIsSafe(hex: string | undefined): boolean {
  if (hex === undefined) return false;
  const code = parseInt(hex, 16);
  // Control characters, `%` (double encoding), `.`, `/` and `\` never appear escaped in a real path.
  return code >= 0x20 && code !== 0x7f && code !== 0x25 && code !== 0x2e && code !== 0x2f && code !== 0x5c;
}

export interface Target {
  path: string;
  /** The query string with its leading `?`, or ''. */
  search: string;
}

// Paths that passed the check lately (most requests go to a few routes); bounded, since paths
// with ids in them are new every time.
const passed = new BoundedMap<string, true>(1000);

/** Splits and checks a raw request target; throws a 400 GatewayError for anything unsafe. */
export function checkTarget(rawUrl: string): Target {
  if (!rawUrl.startsWith('/')) throw new GatewayError('invalid_path', { message: 'The request target must be a path.' });
  const q = rawUrl.indexOf('?');
  const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const search = q === -1 ? '' : rawUrl.slice(q);
  if (path === '/' || passed.has(path)) return { path, search };
  const segments = path.slice(1).split('/');
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..' || !SEGMENT.test(segment)) {
      throw new GatewayError('invalid_path');
    }
    if (segment.includes('%')) {
      for (const match of segment.matchAll(ESCAPE)) {
        if (!escapeIsSafe(match[1])) throw new GatewayError('invalid_path');
      }
    }
  }
  passed.set(path, true);
  return { path, search };
}
