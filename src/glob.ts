// Model globs: `*` matches any run of characters (model names may contain `/` and `:`), `?` one.
//
// Matched without regular expressions: a glob with several `*` compiled to `.*` backtracks
// polynomially in the name's length (`a*a*a*a*a*b` against 200 `a`s took seconds while every
// other request waited). A glob is cut at its stars into segments; the first must start the name,
// the last must end it, and each one between is taken at its leftmost place after the previous:
// taking the leftmost never loses a match, so there is no backtracking. The work is at most the
// name's length times the glob's, and the relay bounds names (MAX_MODEL_LENGTH, relay/body.ts).

/** A segment matches at `at`: same characters, `?` standing for any one. */
function segmentAt(value: string, segment: string, at: number): boolean {
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (c !== 63 /* ? */ && c !== value.charCodeAt(at + i)) return false;
  }
  return true;
}

/** The leftmost place at or after `from` where the segment matches and ends by `end`, or -1. */
function find(value: string, segment: string, from: number, end: number): number {
  // Without `?` the native search does it (linear for the short segments globs have).
  if (!segment.includes('?')) {
    const at = value.indexOf(segment, from);
    return at !== -1 && at + segment.length <= end ? at : -1;
  }
  for (let at = from; at + segment.length <= end; at++) if (segmentAt(value, segment, at)) return at;
  return -1;
}

export function globMatcher(glob: string): (value: string) => boolean {
  const segments = glob.split('*');
  const first = segments[0] as string;
  if (segments.length === 1) return (value) => value.length === first.length && segmentAt(value, first, 0);
  const last = segments[segments.length - 1] as string;
  const middle = segments.slice(1, -1).filter((s) => s.length > 0);
  const fixed = first.length + last.length;
  return (value) => {
    if (value.length < fixed || !segmentAt(value, first, 0) || !segmentAt(value, last, value.length - last.length)) return false;
    let at = first.length;
    const end = value.length - last.length;
    for (const segment of middle) {
      const found = find(value, segment, at, end);
      if (found === -1) return false;
      at = found + segment.length;
    }
    return true;
  };
}

export function compileGlobs(globs: readonly string[] | undefined): ((value: string) => boolean) | undefined {
  if (!globs || globs.length === 0) return undefined;
  const matchers = globs.map(globMatcher);
  return (value) => matchers.some((match) => match(value));
}
