// The operation table the gateway ships (spec/openai/routes.tsv) is checked against the spec it was
// derived from (spec/openai/openapi.yaml, beside it), and the project's tables built on it (what each
// operation costs) against the table: a new operation, or one renamed, fails here until someone
// decides what it is.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ALLOWED_ROUTE_USD } from '../src/config.js';
import { COSTED_OPERATIONS, DECISIONS, NAMED_OPERATIONS, PERMISSIONS, costOf, freeByRule } from '../src/operations/costs.js';
import { ADMIN_BY_TEXT, matchOperation } from '../src/operations/match.js';
import { ROUTES_TSV, operationRows } from '../src/operations/table.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

interface SpecOperation {
  operationId?: string;
  requestBody?: { content?: Record<string, unknown> };
  security?: Array<Record<string, unknown>>;
}

const spec = parse(readFileSync(new URL('openapi.yaml', ROUTES_TSV), 'utf8'), { maxAliasCount: -1 }) as {
  paths: Record<string, Record<string, SpecOperation>>;
};
const rows = operationRows();

describe('spec/openai/routes.tsv against spec/openai/openapi.yaml', () => {
  const specOperations = Object.entries(spec.paths).flatMap(([path, item]) =>
    // The spec's paths are below its server URL, `…/v1`.
    METHODS.filter((m) => item[m] !== undefined).map((m) => ({ method: m.toUpperCase(), path: `/v1${path}`, op: item[m] as SpecOperation })),
  );

  it('has one row per operation of the spec, with its method, path and operationId', () => {
    const fromSpec = specOperations.map((o) => `${o.method} ${o.path} ${o.op.operationId}`).sort();
    const fromTable = rows.map((r) => `${r.method} ${r.path} ${r.operationId}`).sort();
    expect(fromTable).toEqual(fromSpec);
    expect(rows).toHaveLength(288);
  });

  it('gives each operation the request media types the spec declares', () => {
    for (const { method, path, op } of specOperations) {
      const row = rows.find((r) => r.method === method && r.path === path);
      expect(row?.requestTypes.slice().sort(), `${method} ${path}`).toEqual(Object.keys(op.requestBody?.content ?? {}).sort());
    }
  });

  it('tells the operations of admin keys apart as the spec does', () => {
    for (const { method, path, op } of specOperations) {
      const row = rows.find((r) => r.method === method && r.path === path);
      const admin = JSON.stringify(op.security ?? []).includes('AdminApiKeyAuth');
      expect(row?.auth.startsWith('AdminApiKey'), `${method} ${path}`).toBe(admin);
    }
    expect(rows.filter((r) => r.auth.startsWith('AdminApiKey')).every((r) => /^\/v1\/(organization|projects)\//.test(r.path))).toBe(true);
  });

  it('knows the operations whose text asks for an admin key, and matches them as admin operations', () => {
    for (const { method, path, op } of specOperations) {
      const text = JSON.stringify(op);
      const byText = /requires an \[admin API key\]/.test(text) && !JSON.stringify(op.security ?? []).includes('AdminApiKeyAuth');
      const row = rows.find((r) => r.method === method && r.path === path);
      expect(ADMIN_BY_TEXT.has(row?.operationId ?? ''), `${method} ${path}`).toBe(byText);
    }
    expect(matchOperation('GET', '/v1/fine_tuning/checkpoints/ft-x/permissions').admin).toBe(true);
  });
});

describe('the match', () => {
  it('finds every operation of the table from a path with its parameters filled', () => {
    for (const row of rows) {
      const [template = ''] = row.path.split('?');
      const path = template.replace(/\{([a-z_]+)\}/g, (_m, name: string) => `${name}_value`);
      const match = matchOperation(row.method, path);
      // `?beta=true` rows are the wire twins of the plain ones: the match gives the plain id.
      const plain = rows.find((r) => r.method === row.method && r.path === template) ?? row;
      expect(match.id, `${row.method} ${row.path}`).toBe(plain.operationId);
      expect(match.template).toBe(template);
      for (const name of template.match(/\{([a-z_]+)\}/g) ?? []) {
        const bare = name.slice(1, -1);
        expect(match.params[bare]).toBe(`${bare}_value`);
      }
    }
  });

  it('prefers a literal segment to a parameter, and knows nothing else', () => {
    expect(matchOperation('POST', '/v1/threads/runs').id).toBe('createThreadAndRun');
    expect(matchOperation('GET', '/v1/threads/runs').id).toBe('getThread');
    expect(matchOperation('POST', '/v1/responses/compact').id).toBe('Compactconversation');
    expect(matchOperation('GET', '/v1/responses/compact').id).toBe('getResponse');
    expect(matchOperation('HEAD', '/v1/models').id).toBe('listModels');
    for (const [method, path] of [
      ['GET', '/v1/files/file-1/content/more'],
      ['PUT', '/v1/files'],
      ['POST', '/v1/edits'],
      ['GET', '/v1'],
      ['GET', '/v1/realtime'],
    ] as const) {
      const match = matchOperation(method, path);
      expect(match).toMatchObject({ id: 'unknown', template: undefined, admin: false });
    }
    // A write the table does not know may cost; a read may not.
    expect(matchOperation('POST', '/v1/edits').cost).toEqual({ kind: 'model' });
    expect(matchOperation('GET', '/v1/edits').cost).toEqual({ kind: 'free' });
  });
});

describe('the metering table (src/operations/costs.ts)', () => {
  const ids = new Set(rows.map((r) => r.operationId));

  it('names only operations of the table, each once', () => {
    expect(NAMED_OPERATIONS.filter((id) => !ids.has(id))).toEqual([]);
    expect(NAMED_OPERATIONS.filter((id, i) => NAMED_OPERATIONS.indexOf(id) !== i)).toEqual([]);
    expect(COSTED_OPERATIONS.every((id) => DECISIONS.has(id) && DECISIONS.get(id)?.kind !== 'free')).toBe(true);
  });

  it('has a decision for every operation of the table: named, or free by a rule', () => {
    const undecided = rows.filter((r) => !DECISIONS.has(r.operationId) && freeByRule(r) === undefined).map((r) => `${r.method} ${r.path} ${r.operationId}`);
    expect(undecided).toEqual([]);
    expect(rows).toHaveLength(288);
    // The match reads the same decision for every row, by its wire twin for `?beta=true` rows.
    for (const row of rows.filter((r) => !r.path.includes('?'))) {
      const path = row.path.replace(/\{([a-z_]+)\}/g, (_m, name: string) => `${name}_value`);
      expect(matchOperation(row.method, path).cost, row.operationId).toEqual(costOf(row));
    }
  });

  it('makes free by rule only what cannot start paid work: a GET or DELETE takes no body, an admin-key operation manages the organization', () => {
    for (const row of rows) {
      const rule = freeByRule(row);
      if (rule === 'GET' || rule === 'DELETE') expect(row.requestTypes, `${row.method} ${row.path}`).toEqual([]);
      if (rule === 'organization admin key') expect(row.path, row.operationId).toMatch(/^\/v1\/(organization|projects)\//);
    }
    expect(new Set(rows.map((r) => r.method))).toEqual(new Set(['GET', 'POST', 'DELETE']));
  });

  it('names every write of a project key, and decides each route a review found relayed with nothing charged', () => {
    const writes = rows.filter((r) => r.auth.startsWith('ApiKey') && r.method === 'POST').map((r) => r.operationId);
    expect(writes.filter((id) => !DECISIONS.has(id))).toEqual([]);
    const kind = (id: string) => DECISIONS.get(id)?.kind;
    for (const id of ['createRun', 'createThreadAndRun']) expect(kind(id)).toBe('capped');
    for (const id of ['createVideo', 'CreateVideoExtend', 'CreateContainer']) expect(kind(id)).toBe('flat');
    for (const id of ['Compactconversation', 'beta_Compactconversation']) expect(kind(id)).toBe('tokens');
    for (const id of [
      'create-realtime-client-secret', 'create-realtime-session', 'create-realtime-transcription-session',
      'create-realtime-translation-client-secret', 'create-realtime-call', 'accept-realtime-call', 'CreateChatSessionMethod',
      'createEvalRun', 'createFineTuningJob', 'runGrader', 'CreateVideoRemix', 'CreateVideoEdit',
    ]) {
      expect(kind(id), id).toBe('allowed');
    }
    for (const id of ['submitToolOuputsToRun', 'validateGrader', 'createVectorStoreFile', 'createVectorStoreFileBatch', 'searchVectorStore']) {
      expect(DECISIONS.get(id), id).toMatchObject({ kind: 'free', note: expect.any(String) });
    }
  });

  it('opens each refused-unless-allowed operation by a known permission with a default reservation', () => {
    for (const [id, cost] of DECISIONS) {
      if (cost.kind !== 'allowed') continue;
      expect(PERMISSIONS, id).toContain(cost.permission);
    }
    expect(Object.keys(ALLOWED_ROUTE_USD).sort()).toEqual([...PERMISSIONS].sort());
    const used = new Set([...DECISIONS.values()].flatMap((c) => (c.kind === 'allowed' ? [c.permission] : [])));
    expect([...PERMISSIONS].filter((p) => !used.has(p))).toEqual([]);
  });
});
