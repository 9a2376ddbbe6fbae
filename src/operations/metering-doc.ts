// docs/metering.md, written from the metering table itself (costs.ts) and the operation table
// (routes.tsv): `npm run docs:metering` writes it, and test/operations-metering-doc.test.ts fails
// when the file differs from what this gives, so the document cannot drift from the code.
import { ALLOWED_ROUTE_USD } from '../config.js';
import { FLAT_CHARGE_TEXT } from '../quota/flat-prices.js';
import { countsOutput, promptFieldsOf } from '../quota/estimate.js';
import { type Cost, DECISIONS, freeByRule } from './costs.js';
import { type OperationRow, operationRows } from './table.js';

const code = (s: string): string => `\`${s}\``;
const list = (fields: readonly string[]): string => fields.map(code).join(', ');

function decisionOf(cost: Cost): string {
  switch (cost.kind) {
    case 'tokens':
    case 'model':
    case 'capped':
    case 'flat':
      return 'metered now';
    case 'later':
      return 'metered later';
    case 'allowed':
      return `refused unless allowed (${code(cost.permission)})`;
    case 'unbounded':
      return 'refused to a model list or dollar limit';
    case 'free':
      return 'free';
  }
}

/** The top-level `model` of every request is checked when it names one; some decisions need it. */
function modelsChecked(cost: Cost): string {
  const required = cost.kind === 'tokens' || cost.kind === 'model' || cost.kind === 'capped' || (cost.kind === 'flat' && cost.defaultModel !== undefined);
  const fallback = 'defaultModel' in cost && cost.defaultModel ? `, default ${cost.defaultModel}` : required ? ', required for a model list or dollar limit' : '';
  return `${code('model')}${fallback ? ` (${fallback.slice(2)})` : ''}${cost.models ? `, ${list(cost.models)}` : ''}`;
}

function reservesAndCharges(cost: Cost): [string, string] {
  switch (cost.kind) {
    case 'tokens':
      return [
        `prompt of ${list(promptFieldsOf(cost.shape))} (counted)${countsOutput(cost.shape) ? " + the most output it may produce (its token cap, else the model's)" : ''}, at the price of ${code('model')}`,
        `the answer's ${code('usage')} (input, cached input, output), at the price of ${code('model')}`,
      ];
    case 'model':
      return ['nothing ahead', `the answer's ${code('usage')}, at the price of ${code('model')}`];
    case 'capped':
      return [
        `${code(cost.promptCap)} + ${code(cost.outputCap)} at the price of ${code('model')}; both required for keys with a token or dollar limit`,
        'the reservation (the run goes on after the answer), marked estimated',
      ];
    case 'flat':
      return [FLAT_CHARGE_TEXT[cost.charge].reserves, FLAT_CHARGE_TEXT[cost.charge].charges];
    case 'later':
      return ['nothing ahead', cost.charge];
    case 'allowed':
      return [
        `$${ALLOWED_ROUTE_USD[cost.permission].toFixed(2)} (${code(`quota.allowedRouteUsd.${cost.permission}`)})`,
        'the reservation, once the upstream accepts the call, marked estimated',
      ];
    case 'unbounded':
      return ['nothing', 'nothing'];
    case 'free':
      return ['nothing', 'nothing'];
  }
}

const cell = (s: string): string => s.replace(/\|/g, '\\|');

const HEAD = `# Metering: what each operation reserves and charges

Generated from the code's own tables (\`src/operations/costs.ts\` over \`spec/openai/routes.tsv\`) by
\`npm run docs:metering\`; a test fails when this file differs from what the code gives. Every
operation of the table has one decision:

- **metered now**: admitted against the user's limits with the worst case below, and charged
  when the answer ends (an upstream error releases the reservation in full);
- **metered later**: charged when the gateway sees the work done;
- **refused unless allowed**: the work spends where the gateway cannot see or bound it (a
  credential used directly against OpenAI, a job over a dataset of unknown size). Refused with
  403 \`route_not_allowed\` to every user whose \`allow\` list (admin API, \`keyrelay users create|update
  --allow\`) lacks the permission named; an allowed call reserves the amount of
  \`quota.allowedRouteUsd\` for its permission against the dollar windows and is charged it in full
  once the upstream accepts it, since the gateway never sees what is spent;
- **refused to a model list or dollar limit**: relayed, not charged, for users with neither;
- **free**: costs nothing by itself.

Wherever a model can be read (the request's \`model\`, or one nested in the body) it is checked
against the user's model list before anything is relayed; a nested model in a JSON body larger than
1 MB cannot be read, and is refused to a key with a model list.

What no request shows, and so is not metered: vector-store storage (billed by OpenAI per GB-day,
not per call), tool-call fees inside thread runs (file search, code interpreter), and container
sessions after the first (a container used again after 20 idle minutes starts a new session).
`;

/** The whole of docs/metering.md. */
export function meteringMarkdown(costOf: (row: OperationRow) => Cost, rows: readonly OperationRow[] = operationRows()): string {
  const metered: string[] = [];
  const freeNamed: string[] = [];
  const byRule = new Map<string, number>();
  for (const row of rows) {
    const cost = costOf(row);
    if (cost.kind === 'free') {
      const rule = DECISIONS.has(row.operationId) ? undefined : (freeByRule(row) ?? 'none');
      const notes = [...(cost.note ? [cost.note] : []), ...(cost.models ? [`models checked: ${list(cost.models)}`] : [])];
      if (rule === undefined) freeNamed.push(`${code(row.operationId)}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`);
      else byRule.set(rule, (byRule.get(rule) ?? 0) + 1);
      continue;
    }
    const [reserves, charges] = reservesAndCharges(cost);
    const note = cost.note ? ` ${cost.note}.` : '';
    metered.push(
      `| ${row.method} | ${code(row.path)} | ${code(row.operationId)} | ${decisionOf(cost)} | ${cell(modelsChecked(cost))} | ${cell(reserves)} | ${cell(charges + note)} |`,
    );
  }
  const rules = [...byRule].map(([rule, n]) => `${n} by rule (${rule === 'GET' || rule === 'DELETE' ? `every ${rule}: none takes a body` : `every operation of an ${rule}`})`);
  return [
    HEAD,
    `## Operations that cost (${metered.length} of ${rows.length})`,
    '',
    '| Method | Path | Operation | Decision | Model checked | Reserves | Charges |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...metered,
    '',
    `## Free operations (${rows.length - metered.length})`,
    '',
    `${rules.join('; ')}; and these writes, by name: ${freeNamed.join(', ')}.`,
    '',
  ].join('\n');
}
