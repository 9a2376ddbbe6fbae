// One request of the log: its ids, timings, tokens, cost, retries and the pool keys tried.
import type { ComponentChildren } from 'preact';
import { useApi } from '../api';
import { ms, num, usd } from '../format';
import { type Session, paths } from '../session';
import { ErrorNote, Link, Loading, Page, Table, Time } from '../ui';
import type { RequestRecord } from '../types';

function Row(props: { name: string; children: ComponentChildren }) {
  return (
    <div>
      <dt>{props.name}</dt>
      <dd>{props.children}</dd>
    </div>
  );
}

export function RequestPage(props: { session: Session; requestId: string }) {
  const loaded = useApi<RequestRecord>(`${paths(props.session.role).requests}/${encodeURIComponent(props.requestId)}`);
  const r = loaded.data;
  return (
    <Page title="Request">
      <p>
        <Link to="/requests">All requests</Link>
      </p>
      <ErrorNote error={loaded.error} />
      <Loading when={loaded.loading && !r} />
      {r && (
        <>
          <dl class="facts">
            <Row name="Request id">
              <code>{r.requestId}</code>
            </Row>
            <Row name="Upstream request id">{r.upstreamRequestId ? <code>{r.upstreamRequestId}</code> : '–'}</Row>
            <Row name="Time">
              <Time iso={r.time} />
            </Row>
            <Row name="User">{r.userId ?? '–'}</Row>
            <Row name="Key id">{r.keyId ?? '–'}</Row>
            <Row name="Route">
              {r.method} {r.route}
            </Row>
            <Row name="Operation">{r.operation ?? '–'}</Row>
            <Row name="Model">{r.model ?? '–'}</Row>
            <Row name="User agent">{r.userAgent ?? '–'}</Row>
            <Row name="End user">{r.endUser ?? '–'}</Row>
            <Row name="Stream">{r.stream ? 'yes' : 'no'}</Row>
            <Row name="Status">{r.status}</Row>
            <Row name="Outcome">{r.outcome}</Row>
            <Row name="Error">{r.errorCode || r.errorMessage ? `${r.errorCode ?? ''} ${r.errorMessage ?? ''}`.trim() : '–'}</Row>
            <Row name="Upstream">{r.upstream ?? '–'}</Row>
            <Row name="Pool key">{r.poolKeyId ?? '–'}</Row>
            <Row name="Time to first byte">{ms(r.ttfbMs)}</Row>
            <Row name="Duration">{ms(r.durationMs)}</Row>
            <Row name="Input tokens">
              {r.tokens ? `${num(r.tokens.input)}${r.tokens.cachedInput ? ` (${num(r.tokens.cachedInput)} cached)` : ''}` : '–'}
            </Row>
            <Row name="Output tokens">{r.tokens ? `${num(r.tokens.output)}${r.tokens.estimated ? ' (estimated)' : ''}` : '–'}</Row>
            <Row name="Cost">{r.costMicros === undefined ? '–' : usd(r.costMicros / 1_000_000)}</Row>
            <Row name="Retries">{num(r.retries)}</Row>
          </dl>
          <h2>Pool keys tried</h2>
          {r.tried && r.tried.length > 0 ? (
            <Table caption="Pool keys tried before the answer" head={['Pool key', 'Status', 'Code']}>
              {r.tried.map((t, i) => (
                <tr key={i}>
                  <td>{t.poolKeyId}</td>
                  <td class="n">{t.status ?? '–'}</td>
                  <td>{t.code ?? '–'}</td>
                </tr>
              ))}
            </Table>
          ) : (
            <p class="muted">{r.poolKeyId ? `Answered by the first key tried, ${r.poolKeyId}.` : 'No pool key was used.'}</p>
          )}
        </>
      )}
    </Page>
  );
}
