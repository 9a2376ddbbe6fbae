// The web console's build (docs/console.md): Preact through Vite into dist/console/, served by the
// gateway at /console/. Hashed asset names (cached for a year by the server), and a gzip twin of
// every file so the server sends compressed bytes without compressing per request.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import preact from '@preact/preset-vite';
import { type Plugin, defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));
const outDir = fileURLToPath(new URL('../dist/console', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

/** Writes `<file>.gz` beside each file of the build once it is written. */
function gzipTwins(): Plugin {
  return {
    name: 'keyrelay-gzip-twins',
    apply: 'build',
    closeBundle() {
      for (const path of files(outDir)) {
        if (path.endsWith('.gz')) continue;
        writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }));
      }
    },
  };
}

export default defineConfig({
  root,
  base: '/console/',
  plugins: [preact({ devToolsInProdBuild: false, prefreshEnabled: false }), gzipTwins()],
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: 'assets',
    // The preload polyfill would be one more script; every browser the console targets has modulepreload.
    modulePreload: { polyfill: false },
    // No inline data: URLs for assets: the CSP's script-src and style-src are 'self' only.
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
});
