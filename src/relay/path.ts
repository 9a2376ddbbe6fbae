// The request target is checked once and brought to one canonical form before anything else reads
// it: auth, the operation match (src/operations/match.ts), ownership, metering, logs and metrics
// all see the same path, and that path is what goes upstream (docs/reliability.md, case 33).
//
// The canonical form: an escape of a character that may stand in a path segment as it is (letters,
// digits, `-_~`, `!$&'()*+,;=:@`) is decoded, once; any other escape is refused, as are `.`, `..`
// and empty segments, backslashes and malformed escapes. So `/v1/%66iles` is `/v1/files` for every
// decision and upstream alike (OpenAI decodes it the same way), and an encoded `/`, `\`, `.`, `%`
// (double encoding), space or control character never reaches a decision at all.
import { BoundedMap } from '../bounded-map.js';
import { GatewayError } from '../errors.js';

// RFC 3986 pchar, escapes aside.
const SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]+$/;
const ESCAPE = /%([0-9A-Fa-f]{2})?/g;
// What an escape may decode to: a pchar, less `.` (a dot never needs escaping, and escaped dots are
// the classic way round a `..` check).
const DECODABLE = /^[A-Za-z0-9\-_~!$&'()*+,;=:@]$/;

export interface Target {
  /** The canonical path, without the query. */
  path: string;
  /** The query string with its leading `?`, or '', as the client sent it. */
  search: string;
}

// Paths checked lately, raw → canonical (most requests go to a few routes); bounded, since paths
// with ids in them are new every time.
const checked = new BoundedMap<string, string>(1000);

function decodeSegment(segment: string): string {
  return segment.replace(ESCAPE, (_escape, hex: string | undefined) => {
    const char = hex === undefined ? '' : String.fromCharCode(parseInt(hex, 16));
    if (!DECODABLE.test(char)) throw new GatewayError('invalid_path');
    return char;
  });
}

function canonicalPath(path: string): string {
  let out = '';
  for (const raw of path.slice(1).split('/')) {
    const segment = raw.includes('%') ? decodeSegment(raw) : raw;
    if (segment === '' || segment === '.' || segment === '..' || !SEGMENT.test(segment)) throw new GatewayError('invalid_path');
    out += `/${segment}`;
  }
  return out;
}

/** Splits a raw request target and brings its path to the canonical form; throws a 400 GatewayError
 * for anything unsafe. */
export function checkTarget(rawUrl: string): Target {
  if (!rawUrl.startsWith('/')) throw new GatewayError('invalid_path', { message: 'The request target must be a path.' });
  const q = rawUrl.indexOf('?');
  const raw = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const search = q === -1 ? '' : rawUrl.slice(q);
  if (raw === '/') return { path: raw, search };
  let path = checked.get(raw);
  if (path === undefined) {
    // The console's pages end in a slash (`/console/`, its one empty segment): kept as it is.
    path = raw.startsWith('/console/') && raw.endsWith('/') ? `${canonicalPath(raw.slice(0, -1))}/` : canonicalPath(raw);
    checked.set(raw, path);
  }
  return { path, search };
}
