// The console's files, as `npm run build` writes them to dist/console/: `/console/` and every
// other page path (the app's own routes: /console/users, /console/requests …) are index.html,
// never cached without asking again; /console/assets/* have hashed names and are cached for a
// year. A `.br` or `.gz` twin the build wrote is sent to a client that accepts it.
import { readFile, stat } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';

// The package root is two levels up from both src/console-server and dist/console-server.
export const CONSOLE_ROOT = fileURLToPath(new URL('../../dist/console/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

const NO_CACHE = 'no-cache';
const IMMUTABLE = 'public, max-age=31536000, immutable';

// Shown at /console/ when the console was never built (a checkout run from source).
const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>keyrelay console</title></head>
<body><h1>The console is not built</h1>
<p>Run <code>npm run build</code> in the gateway's folder, then reload this page.</p></body></html>
`;

/** The encodings the client accepts (a q of 0 refuses one). */
function accepted(header: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const part of (header ?? '').split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name || params.some((p) => /^\s*q=0(\.0*)?\s*$/.test(p))) continue;
    out.add(name.trim());
  }
  return out;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Sends `file` (or its compressed twin) with the cache header. */
async function sendFile(request: FastifyRequest, reply: FastifyReply, file: string, cache: string): Promise<FastifyReply> {
  const encodings = accepted(request.headers['accept-encoding']);
  reply.header('vary', 'accept-encoding').header('cache-control', cache).type(TYPES[extname(file)] ?? 'application/octet-stream');
  for (const [encoding, suffix] of [['br', '.br'], ['gzip', '.gz']] as const) {
    if (encodings.has(encoding) && (await isFile(file + suffix))) {
      return reply.header('content-encoding', encoding).send(await readFile(file + suffix));
    }
  }
  return reply.send(await readFile(file));
}

export interface StaticOptions {
  /** Where the built files are; tests point it elsewhere. */
  root?: string;
}

export async function staticRoutes(app: FastifyInstance, options: StaticOptions): Promise<void> {
  const root = options.root ?? CONSOLE_ROOT;
  const rootDir = root.endsWith(sep) ? root : root + sep;

  app.get('/console', async (_request, reply) => reply.redirect('/console/', 301));

  app.get('/console/*', async (request, reply) => {
    // The canonical path (src/relay/path.ts): no `..`, `.`, empty segment nor encoded slash got here.
    const path = request.target.path;
    const rest = path.slice('/console/'.length);
    if (rest === 'api' || rest.startsWith('api/')) {
      throw new GatewayError('unknown_url', { message: `Unknown request URL: ${request.method} ${path}.` });
    }
    const segments = rest === '' ? [] : rest.split('/');
    // Names starting with a dot (.env, .git) are never served, even when the build left one.
    const file = segments.some((s) => s.startsWith('.')) ? undefined : join(rootDir, ...segments);
    if (file !== undefined && file.startsWith(rootDir) && (await isFile(file))) {
      return sendFile(request, reply, file, segments[0] === 'assets' ? IMMUTABLE : NO_CACHE);
    }
    // A missing asset is a 404: a page in its place would be read as a script or a style.
    if (segments[0] === 'assets') {
      throw new GatewayError('not_found', { message: `No console file ${path}.` });
    }
    const index = join(rootDir, 'index.html');
    if (await isFile(index)) return sendFile(request, reply, index, NO_CACHE);
    return reply.code(404).header('cache-control', NO_CACHE).type('text/html; charset=utf-8').send(NOT_BUILT);
  });
}
