// `keyrelay usage --csv` is opened in spreadsheets, and model names come from clients: a cell a
// spreadsheet would run as a formula is prefixed with `'`, and a cell holding a separator a
// spreadsheet may split on (`,`, or `;` where the locale's decimal mark is a comma) is quoted.
import { describe, expect, it } from 'vitest';
import { usageCsv } from '../src/cli/usage.js';
import type { UsageFigures, UsageReport } from '../src/observability/usage-report.js';

const ZERO: UsageFigures = {
  requests: 1,
  errors: 0,
  inputTokens: 0,
  cachedInputTokens: 0,
  outputTokens: 0,
  totalTokens: 0,
  costUsd: 0,
  costMicros: 0,
  estimatedRequests: 0,
};

function csvOf(models: string[]): string[] {
  const report: UsageReport = {
    from: '2030-01-01',
    to: '2030-01-31',
    user: null,
    groupBy: ['model'],
    data: models.map((model) => ({ model, ...ZERO })),
    total: ZERO,
  };
  const lines = usageCsv(report).split('\r\n');
  expect(lines.pop()).toBe('');
  return lines.slice(1).map((line) => line.slice(0, line.length - ',1,0,0,0,0,0,0.000000'.length));
}

describe('a CSV cell a client named', () => {
  it.each([
    ['=HYPERLINK("http://x")', `"'=HYPERLINK(""http://x"")"`],
    ['+1+2', "'+1+2"],
    ['-1+2', "'-1+2"],
    ['@SUM(A1)', "'@SUM(A1)"],
    ['\t=1', "'\t=1"],
    ['\r=1', `"'\r=1"`],
    ['\uFF1D1+2', "'\uFF1D1+2"], // a full-width equals sign: some spreadsheets read it as `=`
    ['\uFF0B1', "'\uFF0B1"],
    ['\uFF0D1', "'\uFF0D1"],
    ['\uFF201', "'\uFF201"],
  ])('that begins like a formula, %j, is prefixed', (model, cell) => {
    expect(csvOf([model])).toEqual([cell]);
  });

  it.each([
    ['a;b', '"a;b"'],
    ['a,b', '"a,b"'],
    ['a"b', '"a""b"'],
    ['a\nb', '"a\nb"'],
    ['gpt-4o', 'gpt-4o'],
  ])('that holds a separator or a quote, %j, is quoted', (model, cell) => {
    expect(csvOf([model])).toEqual([cell]);
  });
});
