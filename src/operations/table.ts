// The operation table of the OpenAI API: spec/openai/routes.tsv, one row per operation of the
// official spec (spec/openai/NOTICE says where it comes from). It ships with the program and is
// read once at start; src/operations/match.ts matches every /v1 request against it.
// The file sits two folders above this module in the source tree and in dist/ alike.
import { readFileSync } from 'node:fs';

export interface OperationRow {
  group: string;
  method: string;
  /** As written in the table; may carry a wire query such as `?beta=true`. */
  path: string;
  operationId: string;
  /** Accepted request media types in the table's order; empty when the operation takes no body. */
  requestTypes: string[];
  /** Response media types without the `[201]` status marks; empty for `(none)`. */
  responseTypes: string[];
  /** The status the spec declares when it is not 200 (`application/json[201]`). */
  declaredStatus: number;
  streamRequestField: string;
  sse: boolean;
  /** The binary media types the operation answers with; empty when it answers JSON or nothing. */
  binaryTypes: string[];
  /** `ApiKey (Bearer)` for project keys, `AdminApiKey (Bearer)` for organization admin keys. */
  auth: string;
  specialHeaders: string;
  sdkOpenAIBeta: string;
  sdkAccept: string;
  sdkMultipart: string;
  tags: string;
  notes: string;
}

const COLUMNS = [
  'group',
  'method',
  'path',
  'operationId',
  'request_content_type',
  'response_content_types',
  'stream_request_field',
  'sse_response',
  'binary_response',
  'auth',
  'special_headers',
  'sdk_openai_beta',
  'sdk_accept',
  'sdk_multipart',
  'tags',
  'notes',
] as const;

export const ROUTES_TSV = new URL('../../spec/openai/routes.tsv', import.meta.url);

function typeList(cell: string): string[] {
  if (cell === '' || cell === 'none' || cell === 'no' || cell === '(none)') return [];
  return cell.split(',').map((t) => t.replace(/\[\d+\]$/, '').trim());
}

/** Parses the table's text; throws on a header or a row that does not fit. */
export function parseRoutes(text: string, source = 'routes.tsv'): OperationRow[] {
  const [header, ...lines] = text.split('\n').filter((l) => l !== '');
  if (header?.split('\t').join(',') !== COLUMNS.join(',')) throw new Error(`${source}: unexpected columns: ${header}`);
  return lines.map((line, i) => {
    const cells = line.split('\t');
    if (cells.length !== COLUMNS.length) throw new Error(`${source} line ${i + 2}: ${cells.length} columns`);
    const cell = (name: (typeof COLUMNS)[number]): string => cells[COLUMNS.indexOf(name)] ?? '';
    const declared = /\[(\d+)\]/.exec(cell('response_content_types'))?.[1];
    return {
      group: cell('group'),
      method: cell('method'),
      path: cell('path'),
      operationId: cell('operationId'),
      requestTypes: typeList(cell('request_content_type')),
      responseTypes: typeList(cell('response_content_types')),
      declaredStatus: declared === undefined ? 200 : Number(declared),
      streamRequestField: cell('stream_request_field'),
      sse: cell('sse_response').startsWith('yes'),
      binaryTypes: typeList(cell('binary_response')),
      auth: cell('auth'),
      specialHeaders: cell('special_headers'),
      sdkOpenAIBeta: cell('sdk_openai_beta'),
      sdkAccept: cell('sdk_accept'),
      sdkMultipart: cell('sdk_multipart'),
      tags: cell('tags'),
      notes: cell('notes'),
    };
  });
}

let rows: OperationRow[] | undefined;

/** The table shipped with the program, read on first use. */
export function operationRows(): OperationRow[] {
  rows ??= parseRoutes(readFileSync(ROUTES_TSV, 'utf8'), ROUTES_TSV.pathname);
  return rows;
}
