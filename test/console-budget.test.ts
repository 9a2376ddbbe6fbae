// The console's first load stays small: index.html and every asset it references, gzip-compressed
// as the gateway sends them, under 200 KB in all. Read from the build output (dist/console/, built
// by the globalSetup when stale), with the hashed names and the .gz twins the server relies on.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/console-build.js';

const DIST = join(ROOT, 'dist/console');
const BUDGET = 200 * 1024;

/** The /console/ URLs a page or stylesheet references (script src, link href, CSS url(), JS imports). */
function references(text: string): string[] {
  const found = new Set<string>();
  for (const match of text.matchAll(/(?:src|href)="(\/console\/[^"]+)"|url\((?:["']?)(\/console\/[^)"']+)|["'](\/console\/assets\/[^"']+)["']/g)) {
    found.add((match[1] ?? match[2] ?? match[3]) as string);
  }
  return [...found];
}

/** index.html and everything reachable from it, by path under dist/console/. */
function firstLoad(): string[] {
  const seen = new Set<string>(['index.html']);
  const queue = ['index.html'];
  while (queue.length) {
    const file = queue.shift() as string;
    for (const url of references(readFileSync(join(DIST, file), 'utf8'))) {
      const path = url.replace(/^\/console\//, '');
      if (!seen.has(path)) {
        seen.add(path);
        queue.push(path);
      }
    }
  }
  return [...seen];
}

describe('the console build', () => {
  it('loads its first page in under 200 KB gzip, index.html and every asset it references', () => {
    const files = firstLoad();
    expect(files).toContain('index.html');
    expect(files.some((f) => f.endsWith('.js'))).toBe(true);
    expect(files.some((f) => f.endsWith('.css'))).toBe(true);
    const sizes = files.map((file) => gzipSync(readFileSync(join(DIST, file)), { level: 9 }).length);
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(1000);
    expect(total, `first load ${files.join(', ')}`).toBeLessThan(BUDGET);
  });

  it('names every asset by a hash of its content, so it may be cached for a year', () => {
    const assets = readdirSync(join(DIST, 'assets')).filter((f) => !f.endsWith('.gz'));
    expect(assets.length).toBeGreaterThan(0);
    for (const name of assets) expect(name).toMatch(/-[A-Za-z0-9_-]{8,}\.(js|css|svg|png|woff2)$/);
    for (const url of references(readFileSync(join(DIST, 'index.html'), 'utf8'))) expect(url).toMatch(/^\/console\/assets\//);
  });

  it('writes a .gz twin of every file that holds the same bytes', () => {
    const files = ['index.html', ...readdirSync(join(DIST, 'assets')).filter((f) => !f.endsWith('.gz')).map((f) => `assets/${f}`)];
    for (const file of files) {
      const twin = join(DIST, `${file}.gz`);
      expect(existsSync(twin), twin).toBe(true);
      expect(gunzipSync(readFileSync(twin)).equals(readFileSync(join(DIST, file)))).toBe(true);
    }
  });

  it('has no inline script or style in its page, which the console CSP (script-src and style-src self) would block', () => {
    const html = readFileSync(join(DIST, 'index.html'), 'utf8');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style\b/);
    expect(html).not.toMatch(/\sstyle=/);
    expect(html).not.toMatch(/\son[a-z]+=/);
  });
});
