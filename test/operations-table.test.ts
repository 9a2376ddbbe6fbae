// The operation table the gateway ships (spec/openai/routes.tsv) is checked against the spec it was
// derived from (spec/openai/openapi.yaml, beside it), and the project's tables built on it (what each
// operation costs) against the table: a new operation, or one renamed, fails here until someone
// decides what it is.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { COSTED_OPERATIONS } from '../src/operations/costs.js';
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

describe('what each operation costs (src/operations/costs.ts)', () => {
  const ids = new Set(rows.map((r) => r.operationId));

  it('names only operations of the table, each once', () => {
    expect(COSTED_OPERATIONS.filter((id) => !ids.has(id))).toEqual([]);
    expect(new Set(COSTED_OPERATIONS).size).toBe(COSTED_OPERATIONS.length);
  });

  it('was decided for every write of a key a user holds: costed, or free by nature as listed here', () => {
    // Writes that cost nothing by themselves: uploads, object management, cancellations, token counts.
    const FREE_WRITES = new Set([
      'createAssistant', 'modifyAssistant', 'createThread', 'modifyThread', 'createMessage', 'modifyMessage', 'modifyRun',
      'cancelRun', 'createVoiceConsent', 'updateVoiceConsent', 'createVoice', 'cancelBatch', 'updateChatCompletion',
      'CancelChatSessionMethod', 'CreateContainerFile', 'Createcontentprovenancecheck', 'createConversation',
      'updateConversation', 'createConversationItems', 'createEval', 'updateEval', 'cancelEvalRun', 'createFile',
      'validateGrader', 'createFineTuningCheckpointPermission', 'cancelFineTuningJob', 'pauseFineTuningJob',
      'resumeFineTuningJob', 'hangup-realtime-call', 'refer-realtime-call', 'reject-realtime-call', 'Getinputtokencounts',
      'beta_Getinputtokencounts', 'cancelResponse', 'beta_cancelResponse', 'CreateSkill', 'UpdateSkillDefaultVersion',
      'CreateSkillVersion', 'createUpload', 'cancelUpload', 'completeUpload', 'addUploadPart', 'createVectorStore',
      'modifyVectorStore', 'createVectorStoreFileBatch', 'cancelVectorStoreFileBatch', 'createVectorStoreFile',
      'updateVectorStoreFileAttributes', 'searchVectorStore', 'CreateVideoCharacter',
    ]);
    const writes = rows.filter((r) => r.auth.startsWith('ApiKey') && r.method !== 'GET' && r.method !== 'DELETE').map((r) => r.operationId);
    const costed = new Set(COSTED_OPERATIONS);
    expect(writes.filter((id) => !costed.has(id) && !FREE_WRITES.has(id))).toEqual([]);
    expect([...FREE_WRITES].filter((id) => costed.has(id) || !writes.includes(id))).toEqual([]);
  });
});
