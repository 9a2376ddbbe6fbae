// docs/metering.md is generated from the metering table (npm run docs:metering): written again here
// and compared, so that a decision changed in src/operations/costs.ts without the document fails.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COSTED_OPERATIONS, costOf } from '../src/operations/costs.js';
import { meteringMarkdown } from '../src/operations/metering-doc.js';
import { operationRows } from '../src/operations/table.js';

const written = readFileSync(new URL('../docs/metering.md', import.meta.url), 'utf8');

describe('docs/metering.md', () => {
  it('is exactly what the code\'s own table gives (run `npm run docs:metering` after changing a decision)', () => {
    expect(written).toBe(meteringMarkdown(costOf));
  });

  it('lists every operation that may cost, by method, path and id, and counts all the others', () => {
    const rows = operationRows();
    for (const row of rows.filter((r) => COSTED_OPERATIONS.includes(r.operationId))) {
      expect(written, row.operationId).toContain(`| ${row.method} | \`${row.path}\` | \`${row.operationId}\` |`);
    }
    const listed = written.split('\n').filter((line) => /^\| (GET|POST|DELETE) \|/.test(line)).length;
    const free = Number(/## Free operations \((\d+)\)/.exec(written)?.[1]);
    expect(listed).toBe(rows.filter((r) => costOf(r).kind !== 'free').length);
    expect(listed + free).toBe(rows.length);
  });

  it('changes when a decision changes', () => {
    const other = meteringMarkdown((row) => (row.operationId === 'createRun' ? { kind: 'free' } : costOf(row)));
    expect(other).not.toBe(written);
    expect(other).not.toContain('`createRun` |');
  });
});
