// The operation table the gateway ships (spec/openai/routes.tsv), one typed row per operation.
import { type OperationRow, operationRows } from '../../src/operations/table.js';

export type Route = OperationRow;

export function loadRoutes(): Route[] {
  return operationRows();
}
