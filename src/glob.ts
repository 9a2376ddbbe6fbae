// Model globs: `*` matches any run of characters (model names may contain `/` and `:`), `?` one.
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export function compileGlobs(globs: readonly string[] | undefined): ((value: string) => boolean) | undefined {
  if (!globs || globs.length === 0) return undefined;
  const patterns = globs.map(globToRegExp);
  return (value) => patterns.some((p) => p.test(value));
}
