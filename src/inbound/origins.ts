// Origins as the settings (`cors.origins`) and the admin API (a user's `origins`) take them: each
// `scheme://host[:port]` with nothing after it, or `*` for any. They are kept in the form browsers
// send in `Origin` (RFC 6454 section 6.1: scheme and host in lower case, the scheme's default port
// left out), so that a request's Origin is matched by plain string equality.
import { Type } from '@sinclair/typebox';

export const ANY_ORIGIN = '*';

// The `cors` settings (docs/browsers.md); src/config.ts includes them and checks each origin here.
export const CorsSettings = Type.Object(
  {
    // Pages of these origins may call /v1 from a browser; empty: no CORS at all.
    origins: Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { default: [] }),
  },
  { additionalProperties: false, default: {} },
);

export class OriginError extends Error {
  override name = 'OriginError';
}

const SHAPE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#\s]+)$/;

/**
 * The origin as browsers write it, or an OriginError saying what is wrong with `value`. Besides
 * http and https, any scheme with a host is taken as written (a browser extension's
 * `chrome-extension://<id>`).
 */
export function parseOrigin(value: string): string {
  if (value === ANY_ORIGIN) return value;
  const shape = SHAPE.exec(value);
  if (!shape) {
    const why = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\s]+[/?#]/.test(value) ? 'an origin has no path, query or fragment' : 'expected scheme://host[:port] or *';
    throw new OriginError(`"${value}" is not an origin: ${why}`);
  }
  const scheme = (shape[1] as string).toLowerCase();
  if (value.includes('@')) throw new OriginError(`"${value}" is not an origin: an origin has no user name or password`);
  // Browsers never send a pattern: one in the list would match nothing, silently.
  if (value.includes('*')) throw new OriginError(`"${value}" is not an origin: a host cannot be a pattern; list each origin, or give * alone for any`);
  if (scheme !== 'http' && scheme !== 'https') return `${scheme}://${(shape[2] as string).toLowerCase()}`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new OriginError(`"${value}" is not an origin: its host or port does not parse`);
  }
  return url.origin;
}

/** Each origin of a list parsed; the error names the first bad one's place (`where/<index>`). */
export function parseOrigins(values: readonly string[], where: string): string[] {
  return values.map((value, i) => {
    try {
      return parseOrigin(value);
    } catch (err) {
      if (err instanceof OriginError) throw new OriginError(`${where}/${i}: ${err.message}`);
      throw err;
    }
  });
}
