// The headers every /console answer carries, pages, files and JSON alike: the console loads
// nothing from elsewhere, is never framed, and is never sniffed into another type.
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

/** True for a path the console answers (and so the headers go on). */
export function isConsolePath(path: string): boolean {
  return path === '/console' || path.startsWith('/console/');
}

/** The path of a raw request target, for the headers: the canonical one may not exist (a 400). */
export const rawPath = (url: string | undefined): string => (url ?? '').split('?')[0] as string;

/** Puts the headers on an answer to a raw target under /console. */
export function addConsoleHeaders(url: string | undefined, reply: { headers(values: Record<string, string>): unknown }): void {
  if (isConsolePath(rawPath(url))) reply.headers(SECURITY_HEADERS);
}
