// GET /admin/audit: the audit log, newest first (docs/audit.md). Entries are written by the hook of
// src/audit/hook.ts, never here.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { AUDIT_ID, type AuditLog } from '../audit/log.js';
import { GatewayError } from '../errors.js';
import { adminGuard } from './admin.js';
import { fromStore } from './observability.js';
import type { Config } from '../config.js';

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;
const DAY_MS = 86_400_000;

// Query strings are strings: each is taken as text and checked below, so a message names it.
const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.String({ maxLength: 10 })),
    before: Type.Optional(Type.String({ maxLength: 40 })),
    target: Type.Optional(Type.String({ maxLength: 300 })),
  },
  { additionalProperties: false },
);

const invalid = (param: string, message: string): GatewayError => new GatewayError('invalid_request', { param, message });

export function auditQuery(query: Static<typeof AuditQuery>): { limit: number; before?: string; target?: string } {
  let limit = DEFAULT_PAGE;
  if (query.limit !== undefined) {
    limit = /^[0-9]{1,4}$/.test(query.limit) ? Number(query.limit) : 0;
    if (limit < 1 || limit > MAX_PAGE) throw invalid('limit', `\`limit\` must be a whole number from 1 to ${MAX_PAGE}.`);
  }
  if (query.before !== undefined && !AUDIT_ID.test(query.before)) {
    throw invalid('before', '`before` must be the `id` of an audit entry, such as 1765065600000-0.');
  }
  if (query.target !== undefined && !/^[\x21-\x7e]{1,300}$/.test(query.target)) {
    throw invalid('target', '`target` must be a target as entries show it, such as user:alice (printable characters, no spaces).');
  }
  return { limit, before: query.before, target: query.target };
}

export function auditRetention(config: Pick<Config, 'audit'>) {
  return { maxEntries: config.audit.maxEntries, maxAgeMs: Math.round(config.audit.maxAgeDays * DAY_MS) };
}

export async function auditPlugin(app: FastifyInstance, options: { config: Config; log: AuditLog }): Promise<void> {
  const retention = auditRetention(options.config);
  app.addHook('onRequest', adminGuard(options.config.adminToken ?? ''));
  app.get<{ Querystring: Static<typeof AuditQuery> }>('/audit', { schema: { querystring: AuditQuery } }, async (request) => ({
    data: await fromStore(() => options.log.page(auditQuery(request.query), Date.now(), retention)),
  }));
}
