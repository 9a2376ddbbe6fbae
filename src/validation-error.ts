// A request that fails its route's JSON Schema (the admin API's bodies and query strings) becomes
// one 400 `invalid_request` that names the field. Fastify validates with Ajv set up strictly in
// app.ts: no type coercion and no silent removal of unknown fields, and `verbose` so that an
// error carries the value and the schema it failed, from which the message is made:
//  - unknown fields: all of them named (the first in `param`), and the fields the object takes;
//  - else the deepest failure, worded by the `description` of its schema or the nearest enclosing
//    one (a field's description says what it takes: "must be a whole number ..., or null");
//  - else Ajv's own words.
import type { FastifySchemaValidationError } from 'fastify';
import { GatewayError } from './errors.js';

interface SchemaShape {
  description?: string;
  properties?: Record<string, unknown>;
}

/** What Ajv gives with `verbose: true`, beside Fastify's declared fields. */
interface VerboseError extends FastifySchemaValidationError {
  data?: unknown;
  parentSchema?: SchemaShape;
}

// A client chooses the names of unknown fields: only so many, so long, go into the answer.
const MAX_NAMED = 10;
const MAX_NAME_LENGTH = 100;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** `/limits/rpm` (a JSON Pointer) as `limits.rpm`. */
function fieldPath(instancePath: string, child?: string): string {
  const parts = instancePath === '' ? [] : instancePath.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) parts.push(child);
  return parts.join('.');
}

const shown = (name: string): string => (name.length > MAX_NAME_LENGTH ? `${name.slice(0, MAX_NAME_LENGTH)}…` : name);

function unknownFields(error: VerboseError, where: string | undefined): GatewayError {
  const known = Object.keys(error.parentSchema?.properties ?? {});
  const given = isRecord(error.data) ? Object.keys(error.data).filter((k) => !known.includes(k)) : [];
  const names = (given.length > 0 ? given : [String(error.params.additionalProperty)]).map((k) => shown(fieldPath(error.instancePath, k)));
  const listed = names.slice(0, MAX_NAMED).map((n) => `\`${n}\``).join(', ');
  const more = names.length > MAX_NAMED ? ` and ${names.length - MAX_NAMED} more` : '';
  const noun = where === 'querystring' ? 'query parameter' : 'field';
  const owner = error.instancePath === '' ? (where === 'querystring' ? 'This route' : 'The body') : `\`${fieldPath(error.instancePath)}\``;
  return new GatewayError('invalid_request', {
    message: `Unknown ${noun}${names.length > 1 ? 's' : ''}: ${listed}${more}. ${owner} takes ${known.join(', ') || 'none'}.`,
    param: names[0] ?? null,
  });
}

/** Whether the place `inner` is `outer` or inside it. */
const within = (inner: string, outer: string): boolean => inner === outer || inner.startsWith(`${outer}/`);

const depth = (e: FastifySchemaValidationError): number => (e.instancePath === '' ? 0 : e.instancePath.split('/').length - 1);

export function validationError(errors: readonly FastifySchemaValidationError[], where: string | undefined): GatewayError {
  const all = errors as readonly VerboseError[];
  const unknown = all.find((e) => e.keyword === 'additionalProperties');
  if (unknown) return unknownFields(unknown, where);
  // Ajv reports a failed `anyOf` after the failures of its branches, at the same place: the last
  // of the deepest failures is the one that says what was expected there.
  const deepest = all.reduce<VerboseError | undefined>((best, e) => (best === undefined || depth(e) >= depth(best) ? e : best), undefined);
  if (!deepest) return new GatewayError('invalid_request');
  if (deepest.keyword === 'required') {
    const param = fieldPath(deepest.instancePath, String(deepest.params.missingProperty));
    return new GatewayError('invalid_request', { message: `\`${param}\` is required.`, param });
  }
  const described = [...all]
    .reverse()
    .filter((e) => e.parentSchema?.description !== undefined && within(deepest.instancePath, e.instancePath))
    .sort((a, b) => depth(b) - depth(a))[0];
  if (described) {
    const param = fieldPath(described.instancePath);
    return new GatewayError('invalid_request', { message: `\`${param}\` ${described.parentSchema?.description}.`, param: param || null });
  }
  const param = fieldPath(deepest.instancePath);
  const subject = param ? `\`${param}\`` : where === 'querystring' ? 'the query' : 'the body';
  return new GatewayError('invalid_request', { message: `Invalid request: ${subject} ${deepest.message ?? 'is not valid'}.`, param: param || null });
}
