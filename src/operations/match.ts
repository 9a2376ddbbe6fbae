// Every /v1 request is matched once, at the door, against the operation table (table.ts): the
// operation's id and its path parameters, taken from the canonical path (src/relay/path.ts).
// What the gateway decides about a request afterwards (may the user call it, what it costs, which
// objects it names, whether its answer is a list to filter, its metrics series) reads this match,
// never the raw path again.
//
// A path that matches no operation is still relayed (the upstream may have routes the table does
// not know yet) as the operation `unknown`, which gets the strictest treatment: see costs.ts.
import { type Cost, costOf } from './costs.js';
import { type OperationRow, operationRows } from './table.js';

export interface Operation {
  /** The spec's operationId, or `unknown`. */
  id: string;
  /** The spec's path template (`/v1/files/{file_id}`), or undefined for an unknown operation. */
  template: string | undefined;
  /** The path parameters by name, as they stand in the canonical path. */
  params: Readonly<Record<string, string>>;
  /** Only an organization admin key may call it (`/v1/organization/*` and kin). */
  admin: boolean;
  /** The request media types the operation takes; empty when it takes no body or is unknown. */
  requestTypes: readonly string[];
  cost: Cost;
}

interface Entry {
  row: OperationRow;
  template: string;
  /** The parameter names in path order. */
  names: string[];
  cost: Cost;
}

interface Node {
  literal: Map<string, Node>;
  param?: Node;
  /** By method: the operation that ends here. */
  ends: Map<string, Entry>;
}

const newNode = (): Node => ({ literal: new Map(), ends: new Map() });

/** Operations whose spec text says they need an admin API key, though their `security` lists
 * project keys (openapi.yaml: "**NOTE:** This endpoint requires an admin API key"). */
export const ADMIN_BY_TEXT: ReadonlySet<string> = new Set([
  'listFineTuningCheckpointPermissions',
  'createFineTuningCheckpointPermission',
  'deleteFineTuningCheckpointPermission',
]);
const PARAM = /^\{([^}]+)\}$/;

function build(rows: OperationRow[]): Node {
  const root = newNode();
  for (const row of rows) {
    // `?beta=true` rows are the same wire operation as the plain one, which comes first.
    const template = row.path.split('?')[0] as string;
    let node = root;
    const names: string[] = [];
    for (const segment of template.split('/').slice(1)) {
      const param = PARAM.exec(segment)?.[1];
      if (param !== undefined) {
        names.push(param);
        node = node.param ??= newNode();
      } else {
        let next = node.literal.get(segment);
        if (next === undefined) node.literal.set(segment, (next = newNode()));
        node = next;
      }
    }
    if (!node.ends.has(row.method)) node.ends.set(row.method, { row, template, names, cost: costOf(row) });
  }
  return root;
}

let root: Node | undefined;
let templates: Map<string, string> | undefined;

/** The path template of an operation id (the metrics series of its requests). */
export function operationTemplate(id: string | undefined): string | undefined {
  if (id === undefined) return undefined;
  templates ??= new Map(operationRows().map((row) => [row.operationId, row.path.split('?')[0] as string]));
  return templates.get(id);
}

/** Literal segments win over parameters (`/v1/threads/runs` before `/v1/threads/{thread_id}`). */
function find(node: Node, segments: string[], at: number, method: string, values: string[]): Entry | undefined {
  if (at === segments.length) return node.ends.get(method);
  const segment = segments[at] as string;
  const literal = node.literal.get(segment);
  if (literal) {
    const found = find(literal, segments, at + 1, method, values);
    if (found) return found;
  }
  if (node.param) {
    values.push(segment);
    const found = find(node.param, segments, at + 1, method, values);
    if (found) return found;
    values.pop();
  }
  return undefined;
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

/** The operation a request is: `path` is the canonical path (no query), from checkTarget. */
export function matchOperation(method: string, path: string): Operation {
  root ??= build(operationRows());
  const segments = path.split('/').slice(1);
  const values: string[] = [];
  const entry = find(root, segments, 0, method === 'HEAD' ? 'GET' : method, values);
  if (!entry) return unknownOperation(method);
  let params = NO_PARAMS;
  if (entry.names.length > 0) {
    const named: Record<string, string> = {};
    entry.names.forEach((name, i) => (named[name] = values[i] as string));
    params = named;
  }
  return {
    id: entry.row.operationId,
    template: entry.template,
    params,
    admin: entry.row.auth.startsWith('AdminApiKey') || ADMIN_BY_TEXT.has(entry.row.operationId),
    requestTypes: entry.row.requestTypes,
    cost: entry.cost,
  };
}

const UNKNOWN_READ: Operation = Object.freeze<Operation>({
  id: 'unknown',
  template: undefined,
  params: NO_PARAMS,
  admin: false,
  requestTypes: [],
  cost: { kind: 'free' },
});
const UNKNOWN_WRITE: Operation = Object.freeze<Operation>({ ...UNKNOWN_READ, cost: { kind: 'model' } });

/** A request the table does not know: a write may cost (priced by the model it names, if any). */
export function unknownOperation(method: string): Operation {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS' || method === 'DELETE' ? UNKNOWN_READ : UNKNOWN_WRITE;
}
