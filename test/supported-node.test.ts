// The Node.js versions package.json promises (engines) are those every installed package accepts,
// so that `npm install` on the oldest of them warns of no engine: vite and vitest take
// ^20.19.0 || >=22.12.0, and cookie@2 (of light-my-request) asks for Node 22, so package.json
// overrides it with cookie 1.x, which takes Node 18 and has the function light-my-request calls.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

type Version = [number, number, number];

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as {
  packages: Record<string, { version?: string; optional?: boolean; engines?: { node?: string } | string[] }>;
};

function version(text: string): Version {
  const [major = 0, minor = 0, patch = 0] = text.split('.').map((part) => Number.parseInt(part, 10) || 0);
  return [major, minor, patch];
}
const compare = (a: Version, b: Version): number => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/** Whether `v` satisfies a range of the forms packages use: `>=x`, `^x`, `x || y`, `>=x <y`, `*`. */
function satisfies(v: Version, range: string): boolean {
  return range.split('||').some((alternative) => {
    const parts = alternative.trim().replace(/(>=|<=|>|<|\^|~)\s+/g, '$1').split(/\s+/).filter(Boolean);
    return parts.every((part) => {
      if (part === '*' || part === 'x') return true;
      const m = /^(>=|<=|>|<|\^|~)?v?([\d.x]+)$/.exec(part);
      if (!m) throw new Error(`a range this check does not read: ${range}`);
      const bound = version(m[2] as string);
      const c = compare(v, bound);
      switch (m[1]) {
        case '>=':
          return c >= 0;
        case '>':
          return c > 0;
        case '<=':
          return c <= 0;
        case '<':
          return c < 0;
        case '^':
          return c >= 0 && v[0] === bound[0];
        case '~':
          return c >= 0 && v[0] === bound[0] && v[1] === bound[1];
        default:
          return v[0] === bound[0];
      }
    });
  });
}

describe('the supported Node.js versions', () => {
  // The oldest version of each line engines names: ^20.19.0 || >=22.12.0 gives 20.19.0 and 22.12.0.
  const oldest = [...pkg.engines.node.matchAll(/(?:\^|>=)\s*(\d+\.\d+\.\d+)/g)].map((m) => version(m[1] as string));

  it('are named as the lines vite and vitest take, and this machine is on one', () => {
    expect(pkg.engines.node).toBe('^20.19.0 || >=22.12.0');
    expect(oldest).toEqual([
      [20, 19, 0],
      [22, 12, 0],
    ]);
    expect(satisfies(version(process.versions.node), pkg.engines.node)).toBe(true);
    expect(satisfies([22, 11, 0], pkg.engines.node)).toBe(false);
  });

  it('are accepted by every package of the lock file (cookie through its override), on the oldest of each line', () => {
    const refusing = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== '' && typeof entry.engines === 'object' && !Array.isArray(entry.engines) && entry.engines.node)
      // Optional packages are the platform bindings (and their helpers) npm installs only on their
      // own cpu and os: the WebAssembly binding of rolldown and its runtime are never on a server.
      .filter(([, entry]) => entry.optional !== true)
      .flatMap(([path, entry]) =>
        oldest.filter((v) => !satisfies(v, (entry.engines as { node: string }).node)).map((v) => `${path}@${entry.version} refuses ${v.join('.')}`),
      );
    expect(refusing).toEqual([]);
    expect(lock.packages['node_modules/light-my-request/node_modules/cookie']?.version).toMatch(/^1\./);
  });

  it('reads ranges as npm does, for the forms found in the lock file', () => {
    expect(satisfies([20, 18, 1], '>=22')).toBe(false);
    expect(satisfies([20, 18, 1], '>=18')).toBe(true);
    expect(satisfies([20, 18, 1], '^20.19.0 || >=22.12.0')).toBe(false);
    expect(satisfies([20, 18, 1], '^18.0.0 || ^20.0.0 || >=22.0.0')).toBe(true);
    expect(satisfies([20, 18, 1], '>= 14.16')).toBe(true);
    expect(satisfies([20, 18, 1], '>=12 <21')).toBe(true);
  });
});
