// How admin changes reach the audit log. Each admin route that changes something declares its
// action and target in its options (`config: { audit: ... }`); an `onRoute` hook refuses to
// register an /admin route other than GET without one, so a new route cannot forget it, and adds
// to each declared route an `onSend` hook that appends one entry once the change succeeded (a 2xx
// answer), before the answer leaves: a client that reads the log after its change finds it there.
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { Logger } from 'pino';
import type { AuditLog, AuditRetention } from './log.js';

export interface AuditSpec {
  /** `<object>.<verb>`: `user.create`. */
  action: string;
  /** `<kind>:<id>` from the request and the answer about to be sent (parsed JSON). */
  target(request: FastifyRequest, answer: Record<string, unknown>): string;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    audit?: AuditSpec;
  }
  interface FastifyInstance {
    /** Every admin route that changes something, with its audit action (tests walk this list). */
    auditedRoutes: ReadonlyArray<{ method: string; url: string; action: string }>;
  }
}

/** A route's `config` declaring its audit action and target: `{ config: audited('user.create', …) }`. */
export function audited(action: string, target: AuditSpec['target']): { audit: AuditSpec } {
  return { audit: { action, target } };
}

/** Who made the change: `admin` (the admin token, or an admin's console session), or
 * `user:<id>` for a user changing their own things in the console. */
export function actorOf(request: FastifyRequest): string {
  const signedIn = request.consoleSession;
  return signedIn?.session.role === 'user' ? `user:${String(signedIn.session.userId)}` : 'admin';
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** True for a route that must declare an audit action: any /admin route but a read. */
export function changesState(route: Pick<RouteOptions, 'url' | 'method'>): boolean {
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  return route.url.startsWith('/admin/') && methods.some((m) => !READS.has(String(m).toUpperCase()));
}

function parsedAnswer(payload: unknown): Record<string, unknown> {
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return {};
  try {
    const value = JSON.parse(payload.toString()) as unknown;
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export interface AuditHookOptions {
  log: AuditLog;
  retention: AuditRetention;
  logger: Logger;
  now?: () => number;
}

/** Installs the audit on `app`; call before any admin route is registered. */
export function auditAdminRoutes(app: FastifyInstance, options: AuditHookOptions): void {
  const now = options.now ?? Date.now;
  const audited: Array<{ method: string; url: string; action: string }> = [];
  app.decorate('auditedRoutes', audited);
  app.addHook('onRoute', (route) => {
    const spec = (route.config as { audit?: AuditSpec } | undefined)?.audit;
    // Routes elsewhere may declare an action too (the console's /console/api/me changes).
    if (!changesState(route) && !spec) return;
    if (!spec) throw new Error(`${String(route.method)} ${route.url}: an admin route that changes something must declare config.audit`);
    if (changesState(route)) for (const method of Array.isArray(route.method) ? route.method : [route.method]) audited.push({ method: String(method), url: route.url, action: spec.action });
    const record = async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      if (reply.statusCode < 200 || reply.statusCode > 299) return payload;
      const entry = { actor: actorOf(request), action: spec.action, target: spec.target(request, parsedAnswer(payload)), requestId: request.id, ip: request.ip };
      try {
        await options.log.append(entry, now(), options.retention);
      } catch (err) {
        // The change is made and cannot be undone here: say loudly that its entry is missing.
        options.logger.error({ ...entry, reason: (err as Error).message }, 'audit: could not record an admin change');
      }
      return payload;
    };
    const existing = route.onSend;
    route.onSend = [...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing]), record] as RouteOptions['onSend'];
  });
}
