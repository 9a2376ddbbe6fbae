// Overview: requests, errors, tokens and cost over the last hour, day or 30 days, split by user,
// model or pool key; the top users and models; each upstream's pool at a glance. Everything is
// added up by the gateway (GET /admin/usage/series); the page only draws it.
import { useMemo, useState } from 'preact/hooks';
import { query, useApi } from '../api';
import { TimeChart } from '../chart';
import { num, usdOfMicros } from '../format';
import { type Session, paths } from '../session';
import { Badge, Empty, ErrorNote, Link, Loading, Page, Select, Table } from '../ui';
import type { Series, UpstreamView } from '../types';

const RANGES: Array<[string, string]> = [
  ['hour', 'Last hour'],
  ['day', 'Last day'],
  ['month', 'Last 30 days'],
];

export function Overview(props: { session: Session }) {
  const admin = props.session.role === 'admin';
  const [range, setRange] = useState('day');
  const [by, setBy] = useState(admin ? 'user' : 'model');
  const series = useApi<Series>(`${paths(props.session.role).series}${query({ range, by })}`);
  const splits: Array<[string, string]> = admin
    ? [
        ['user', 'User'],
        ['model', 'Model'],
        ['poolKey', 'Pool key'],
      ]
    : [
        ['model', 'Model'],
        ['poolKey', 'Pool key'],
      ];
  const data = series.data;
  const times = useMemo(() => (data ? data.buckets.map((b) => Date.parse(b) / 1000) : []), [data]);
  const pick = (field: 'requests' | 'errors' | 'tokens' | 'costMicros') => (data ? data.series.map((s) => ({ name: s.name, values: s[field] })) : []);
  const charts = useMemo(
    () => ({ requests: pick('requests'), errors: pick('errors'), tokens: pick('tokens'), cost: pick('costMicros') }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [data],
  );
  return (
    <Page title="Overview">
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <Select label="Period" value={range} onChange={setRange} options={RANGES} />
        <Select label="Split by" value={by} onChange={setBy} options={splits} />
      </form>
      <ErrorNote error={series.error} />
      <Loading when={series.loading && !data} />
      {data && (
        <>
          <dl class="totals" aria-label="Totals for the period">
            <div>
              <dt>Requests</dt>
              <dd data-total="requests">{num(data.total.requests)}</dd>
            </div>
            <div>
              <dt>Errors</dt>
              <dd data-total="errors">{num(data.total.errors)}</dd>
            </div>
            <div>
              <dt>Tokens</dt>
              <dd data-total="tokens">{num(data.total.totalTokens)}</dd>
            </div>
            <div>
              <dt>Cost</dt>
              <dd data-total="cost">{usdOfMicros(data.total.costMicros)}</dd>
            </div>
          </dl>
          {data.total.requests === 0 ? (
            <Empty>
              No requests in this period. Create a user and a key on the Users page, then send a request to /v1 with it, or try one in the{' '}
              <Link to="/playground">Playground</Link>.
            </Empty>
          ) : (
            <div class="charts">
              <TimeChart title="Requests" times={times} series={charts.requests} format={num} />
              <TimeChart title="Errors" times={times} series={charts.errors} format={num} />
              <TimeChart title="Tokens" times={times} series={charts.tokens} format={num} />
              <TimeChart title="Cost" times={times} series={charts.cost} format={usdOfMicros} />
            </div>
          )}
          <div class="columns">
            {admin && <Top caption="Top users" rows={data.top.users} link={(name) => `/users/${encodeURIComponent(name)}`} />}
            <Top caption="Top models" rows={data.top.models} />
          </div>
        </>
      )}
      {admin && <Pools />}
    </Page>
  );
}

function Top(props: { caption: string; rows: Series['top']['users']; link?: (name: string) => string }) {
  return (
    <div>
      <h2>{props.caption}</h2>
      {props.rows.length === 0 ? (
        <Empty>Nothing in this period yet.</Empty>
      ) : (
        <Table caption={props.caption} head={['Name', 'Requests', 'Tokens', 'Cost']}>
          {props.rows.map((row) => (
            <tr key={row.name}>
              <td>{props.link ? <Link to={props.link(row.name)}>{row.name}</Link> : row.name}</td>
              <td class="n">{num(row.requests)}</td>
              <td class="n">{num(row.totalTokens)}</td>
              <td class="n">{usdOfMicros(row.costMicros)}</td>
            </tr>
          ))}
        </Table>
      )}
    </div>
  );
}

function Pools() {
  const upstreams = useApi<{ data: UpstreamView[] }>('/admin/upstreams');
  return (
    <div>
      <h2>Upstream pools</h2>
      <ErrorNote error={upstreams.error} />
      {upstreams.data && upstreams.data.data.length === 0 && (
        <Empty>
          No upstream yet. Add one on the <Link to="/upstreams">Upstreams</Link> page, or set OPENAI_API_KEYS.
        </Empty>
      )}
      <ul class="pools">
        {upstreams.data?.data.map((u) => (
          <li key={u.id}>
            <Link to="/upstreams">{u.id}</Link>
            <ul class="pool-keys" aria-label={`Keys of ${u.id}`}>
              {u.keys.map((k) => (
                <li key={k.id}>
                  <span>{k.id}</span> <Badge state={k.state} /> <span class="muted">{num(k.inFlight)} in flight</span>
                </li>
              ))}
              {u.keys.length === 0 && <li class="muted">no keys: add one on the Upstreams page</li>}
            </ul>
          </li>
        ))}
      </ul>
    </div>
  );
}
