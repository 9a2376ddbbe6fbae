// Usage: tables by day, model and user for a chosen range of UTC days (GET /admin/usage, added up
// by the gateway), each with a CSV download of exactly what it shows.
import { useState } from 'preact/hooks';
import { query, useApi } from '../api';
import { download, toCsv } from '../csv';
import { num, usd } from '../format';
import { type Session, paths } from '../session';
import { Empty, ErrorNote, Field, Loading, Page, Table } from '../ui';
import type { UsageReport } from '../types';

const DAY = 86_400_000;
const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

type Group = 'day' | 'model' | 'user';

export function Usage(props: { session: Session }) {
  const admin = props.session.role === 'admin';
  const [from, setFrom] = useState(utcDay(Date.now() - 6 * DAY));
  const [to, setTo] = useState(utcDay(Date.now()));
  const groups: Group[] = admin ? ['day', 'model', 'user'] : ['day', 'model'];
  return (
    <Page title="Usage">
      <form class="filters" aria-label="Range of days" onSubmit={(e) => e.preventDefault()}>
        <Field label="From (UTC day)" type="date" value={from} onInput={setFrom} />
        <Field label="To (UTC day)" type="date" value={to} onInput={setTo} />
      </form>
      {groups.map((group) => (
        <UsageTable key={group} path={paths(props.session.role).usage} group={group} from={from} to={to} />
      ))}
    </Page>
  );
}

const TITLES: Record<Group, string> = { day: 'By day', model: 'By model', user: 'By user' };

function UsageTable(props: { path: string; group: Group; from: string; to: string }) {
  const report = useApi<UsageReport>(`${props.path}${query({ from: props.from, to: props.to, groupBy: props.group })}`);
  const data = report.data;
  const head = [props.group === 'day' ? 'Day (UTC)' : props.group === 'model' ? 'Model' : 'User', 'Requests', 'Errors', 'Input tokens', 'Output tokens', 'Total tokens', 'Cost (USD)'];
  const rows = (data?.data ?? []).map((line) => [
    line[props.group] ?? '',
    line.requests,
    line.errors,
    line.inputTokens,
    line.outputTokens,
    line.totalTokens,
    line.costUsd,
  ]);
  return (
    <section aria-labelledby={`usage-${props.group}`}>
      <header class="page-head">
        <h2 id={`usage-${props.group}`}>{TITLES[props.group]}</h2>
        <button
          type="button"
          disabled={!data || rows.length === 0}
          onClick={() => download(`keyrelay-usage-${props.group}-${props.from}-${props.to}.csv`, toCsv(head, [...rows, ['total', data!.total.requests, data!.total.errors, data!.total.inputTokens, data!.total.outputTokens, data!.total.totalTokens, data!.total.costUsd]]))}
        >
          Download {TITLES[props.group].toLowerCase()} as CSV
        </button>
      </header>
      <ErrorNote error={report.error} />
      <Loading when={report.loading && !data} />
      {data && rows.length === 0 && <Empty>No usage in these days. Pick a wider range, or send requests with a user key first.</Empty>}
      {data && rows.length > 0 && (
        <Table caption={`Usage ${TITLES[props.group].toLowerCase()}`} head={head} class={`usage usage-${props.group}`}>
          {rows.map((row, i) => (
            <tr key={i}>
              <td>{row[0]}</td>
              {row.slice(1, 6).map((n, j) => (
                <td class="n" key={j}>
                  {num(n as number)}
                </td>
              ))}
              <td class="n">{usd(row[6] as number)}</td>
            </tr>
          ))}
          <tr class="total">
            <th scope="row">Total</th>
            <td class="n" data-total="requests">{num(data.total.requests)}</td>
            <td class="n">{num(data.total.errors)}</td>
            <td class="n">{num(data.total.inputTokens)}</td>
            <td class="n">{num(data.total.outputTokens)}</td>
            <td class="n" data-total="tokens">{num(data.total.totalTokens)}</td>
            <td class="n" data-total="cost">{usd(data.total.costUsd)}</td>
          </tr>
        </Table>
      )}
    </section>
  );
}
