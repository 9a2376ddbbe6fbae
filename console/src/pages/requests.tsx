// Requests: the request log with filters, paged by the gateway (a `before` cursor, never the whole
// log in the page), and a live tail of requests as they finish, by EventSource on the stream route.
import { useEffect, useState } from 'preact/hooks';
import { query, useApi } from '../api';
import { ms, num, usd } from '../format';
import { type Session, paths } from '../session';
import { Empty, ErrorNote, Field, Link, Loading, Page, Pager, Select, Table, Time } from '../ui';
import type { RequestPage, RequestRecord } from '../types';

const PAGE = 50;
const TAIL = 100;
const OUTCOMES = ['ok', 'client_aborted', 'upstream_error', 'stream_interrupted', 'auth_failed', 'forbidden', 'bad_request', 'too_large', 'not_found', 'quota_rejected', 'quota_unavailable', 'no_key', 'error'];

interface Filters {
  user: string;
  model: string;
  status: string;
  outcome: string;
  from: string;
  to: string;
}

/** A datetime-local value (the browser's zone) as an ISO time, or '' when empty or not a time. */
function isoOf(local: string): string {
  if (!local) return '';
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}

export function Requests(props: { session: Session }) {
  const admin = props.session.role === 'admin';
  const routes = paths(props.session.role);
  const [filters, setFilters] = useState<Filters>({ user: '', model: '', status: '', outcome: '', from: '', to: '' });
  // Cursors of the pages before this one; the last is this page's.
  const [cursors, setCursors] = useState<string[]>([]);
  const set = (change: Partial<Filters>) => {
    setFilters({ ...filters, ...change });
    setCursors([]);
  };
  const shared = { user: admin ? filters.user : '', model: filters.model, status: filters.status, outcome: filters.outcome };
  const before = cursors[cursors.length - 1];
  const page = useApi<RequestPage>(`${routes.requests}${query({ ...shared, from: isoOf(filters.from), to: isoOf(filters.to), limit: PAGE, before })}`);
  const next = page.data ? (page.data.nextBefore ?? page.data.next ?? null) : null;
  const rows = page.data?.data ?? [];
  return (
    <Page title="Requests">
      <form class="filters" role="search" aria-label="Filter requests" onSubmit={(e) => e.preventDefault()}>
        {admin && <Field label="User" value={filters.user} onInput={(user) => set({ user })} />}
        <Field label="Model" value={filters.model} onInput={(model) => set({ model })} />
        <Field label="Status" value={filters.status} onInput={(status) => set({ status })} placeholder="429 or 5xx" />
        <Select label="Outcome" value={filters.outcome} onChange={(outcome) => set({ outcome })} options={[['', 'any'], ...OUTCOMES.map((o): [string, string] => [o, o])]} />
        <Field label="From (your time)" type="datetime-local" value={filters.from} onInput={(from) => set({ from })} />
        <Field label="To (your time)" type="datetime-local" value={filters.to} onInput={(to) => set({ to })} />
      </form>
      <LiveTail url={`${routes.stream}${query(shared)}`} />
      <h2>Log</h2>
      <ErrorNote error={page.error} />
      <Loading when={page.loading && !page.data} />
      {page.data && rows.length === 0 && (
        <Empty>
          {cursors.length || Object.values(filters).some(Boolean)
            ? 'No request matches these filters. Clear a filter or widen the time range.'
            : 'No requests logged yet. Send one to /v1 with a user key, or try the Playground.'}
        </Empty>
      )}
      {rows.length > 0 && <RequestTable caption="Request log" rows={rows} showUser={admin} />}
      <Pager
        label="Pages of requests"
        onPrevious={cursors.length ? () => setCursors(cursors.slice(0, -1)) : undefined}
        onNext={next ? () => setCursors([...cursors, next]) : undefined}
      />
    </Page>
  );
}

export function RequestTable(props: { caption: string; rows: RequestRecord[]; showUser: boolean }) {
  const head = ['Time', ...(props.showUser ? ['User'] : []), 'Model', 'Route', 'Status', 'Outcome', 'Tokens', 'Cost', 'Duration'];
  return (
    <Table caption={props.caption} head={head} class="requests">
      {props.rows.map((r) => (
        <tr key={r.id ?? r.requestId}>
          <td>
            <Link to={`/requests/${encodeURIComponent(r.requestId)}`}>
              <Time iso={r.time} />
            </Link>
          </td>
          {props.showUser && <td>{r.userId ?? '–'}</td>}
          <td class="clip">{r.model ?? '–'}</td>
          <td class="clip">
            {r.method} {r.route}
          </td>
          <td class="n">{r.status}</td>
          <td>{r.outcome}</td>
          <td class="n">{r.tokens ? num(r.tokens.input + r.tokens.output) : '–'}</td>
          <td class="n">{r.costMicros === undefined ? '–' : usd(r.costMicros / 1_000_000)}</td>
          <td class="n">{ms(r.durationMs)}</td>
        </tr>
      ))}
    </Table>
  );
}

/** Requests as they finish: one EventSource while the tail is on, closed when it is turned off,
 * when the filters change or when the page is left. The list keeps the newest TAIL. */
function LiveTail(props: { url: string }) {
  const [on, setOn] = useState(false);
  const [rows, setRows] = useState<RequestRecord[]>([]);
  const [state, setState] = useState('');
  useEffect(() => {
    if (!on) return;
    const source = new EventSource(props.url);
    setState('connecting…');
    source.onopen = () => setState('connected: new requests appear here as they finish');
    source.onerror = () => setState(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting…');
    source.addEventListener('request', (event) => {
      try {
        const record = JSON.parse((event as MessageEvent<string>).data) as RequestRecord;
        setRows((current) => [record, ...current].slice(0, TAIL));
      } catch {
        // A line that is not JSON is not a record; the next one is.
      }
    });
    return () => source.close();
  }, [on, props.url]);
  return (
    <section class="tail" aria-labelledby="tail-title">
      <header class="page-head">
        <h2 id="tail-title">Live tail</h2>
        <button type="button" aria-pressed={on} onClick={() => setOn(!on)}>
          {on ? 'Stop live tail' : 'Start live tail'}
        </button>
      </header>
      {on && (
        <p class="muted" role="status">
          {state}
        </p>
      )}
      {on && rows.length > 0 && (
        <div role="log" aria-label="Requests as they finish">
          <RequestTable caption="Live tail" rows={rows} showUser={true} />
        </div>
      )}
      {on && rows.length === 0 && <Empty>Waiting for the next request to finish. Send one, for example from the Playground.</Empty>}
    </section>
  );
}
