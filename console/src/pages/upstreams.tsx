// Upstreams: each upstream and pool key with its state (active, cooling until, disabled and why,
// draining), in flight and recent failures; enable, disable, add, rotate, test and remove a key.
// Secret fields are write-only: sent once, cleared from the form, never read back (the gateway
// shows the last 4 characters).
import { useState } from 'preact/hooks';
import { api, useApi } from '../api';
import { dec, num } from '../format';
import { Badge, ConfirmButton, Empty, ErrorNote, Field, Loading, Page, SubmitOrCancel, Table, Time } from '../ui';
import type { PoolKeyView, UpstreamView } from '../types';

const path = (...parts: string[]) => `/admin/upstreams/${parts.map(encodeURIComponent).join('/')}`;

export function Upstreams() {
  const list = useApi<{ data: UpstreamView[] }>('/admin/upstreams');
  const [adding, setAdding] = useState(false);
  const [note, setNote] = useState<string>('');
  const [error, setError] = useState<Error | undefined>();
  /** Runs a change, then reads the list again; its answer or error is said once, politely. */
  const act = async (what: string, work: () => Promise<unknown>) => {
    setError(undefined);
    setNote('');
    try {
      await work();
      setNote(what);
    } catch (err) {
      setError(err as Error);
    }
    list.reload();
  };
  return (
    <Page
      title="Upstreams"
      actions={
        <button type="button" class="primary" onClick={() => setAdding(!adding)} aria-expanded={adding}>
          Add upstream
        </button>
      }
    >
      {adding && <AddUpstream onDone={() => (setAdding(false), list.reload())} />}
      <p class="note" role="status">
        {note}
      </p>
      <ErrorNote error={error ?? list.error} />
      <Loading when={list.loading && !list.data} />
      {list.data?.data.length === 0 && <Empty>No upstream yet. Add one with “Add upstream”, or start the gateway with OPENAI_API_KEYS set.</Empty>}
      {list.data?.data.map((u) => (
        <section class="upstream" key={u.id} aria-labelledby={`upstream-${u.id}`}>
          <header class="page-head">
            <h2 id={`upstream-${u.id}`}>{u.id}</h2>
            {u.source === 'store' && (
              <ConfirmButton label={`Remove upstream ${u.id}`} confirm={`Remove ${u.id}; its keys drain`} onConfirm={() => act(`Removed ${u.id}.`, () => api('DELETE', path(u.id)))} />
            )}
          </header>
          <p class="muted">
            <span>{u.baseUrl}</span> · {u.strategy} · {u.source === 'settings' ? 'from the settings (read-only here)' : 'added at run time'}
            {u.models ? ` · models ${u.models.join(', ')}` : ''}
          </p>
          {u.keys.length === 0 ? (
            <Empty>No pool keys: add one below, or requests to this upstream get 503 no_upstream_key_available.</Empty>
          ) : (
            <Table caption={`Pool keys of ${u.id}`} head={['Key', 'State', 'In flight', 'Requests', 'Failures', 'Recent error', 'Actions']}>
              {u.keys.map((k) => (
                <KeyRow key={k.id} upstream={u} k={k} act={act} />
              ))}
            </Table>
          )}
          <AddKey upstream={u.id} act={act} />
        </section>
      ))}
    </Page>
  );
}

function KeyRow(props: { upstream: UpstreamView; k: PoolKeyView; act: (what: string, work: () => Promise<unknown>) => Promise<void> }) {
  const { upstream, k, act } = props;
  const [rotating, setRotating] = useState(false);
  const [secret, setSecret] = useState('');
  const [test, setTest] = useState<{ ok: boolean; status?: number; latencyMs?: number; error?: string | null } | null>(null);
  const fromStore = k.source === 'store';
  return (
    <tr>
      <td>
        <strong>{k.id}</strong> <code>…{k.last4}</code>
        <div class="muted">weight {dec(k.weight)}</div>
      </td>
      <td>
        <Badge state={k.state} />
        {k.until && (
          <div class="muted">
            {k.state === 'cooling' ? 'until ' : 'next try '}
            <Time iso={k.until} />
          </div>
        )}
        {k.reason && <div class="muted">{k.reason}</div>}
      </td>
      <td class="n">{num(k.inFlight)}</td>
      <td class="n">{num(k.requests)}</td>
      <td class="n">
        {num(k.failures)}
        {k.consecutiveFailures > 0 && <div class="muted">{num(k.consecutiveFailures)} in a row</div>}
      </td>
      <td>
        {k.reason ?? ''}
        {test && <div class={test.ok ? 'ok' : 'error'}>{test.ok ? `test ok (${num(test.latencyMs)} ms)` : `test failed: ${test.status ?? ''} ${test.error ?? ''}`}</div>}
      </td>
      <td>
        <div class="row-actions">
        {k.state === 'disabled' ? (
          <button type="button" onClick={() => act(`Enabled ${k.id}.`, () => api('POST', `${path(upstream.id, 'keys', k.id)}/enable`))}>
            Enable {k.id}
          </button>
        ) : (
          <button type="button" onClick={() => act(`Disabled ${k.id}.`, () => api('POST', `${path(upstream.id, 'keys', k.id)}/disable`))}>
            Disable {k.id}
          </button>
        )}
        <button
          type="button"
          onClick={() =>
            act(`Tested ${k.id}.`, async () => {
              setTest(await api('POST', `${path(upstream.id, 'keys', k.id)}/test`));
            })
          }
        >
          Test {k.id}
        </button>
        {fromStore && (
          <button type="button" onClick={() => setRotating(!rotating)} aria-expanded={rotating}>
            Rotate {k.id}
          </button>
        )}
        {fromStore && <ConfirmButton label={`Remove ${k.id}`} confirm={`Remove ${k.id}; it drains`} onConfirm={() => act(`Removed ${k.id}.`, () => api('DELETE', path(upstream.id, 'keys', k.id)))} />}
        {rotating && (
          <form
            class="inline-form"
            aria-label={`Rotate ${k.id}`}
            onSubmit={async (event) => {
              event.preventDefault();
              const key = secret;
              setSecret('');
              setRotating(false);
              await act(`Rotated ${k.id}; the old secret drains.`, () => api('POST', `${path(upstream.id, 'keys', k.id)}/rotate`, { key }));
            }}
          >
            <Field label={`New secret for ${k.id}`} type="password" autoComplete="new-password" value={secret} onInput={setSecret} required />
            <button type="submit">Save new secret</button>
          </form>
        )}
        </div>
      </td>
    </tr>
  );
}

function AddKey(props: { upstream: string; act: (what: string, work: () => Promise<unknown>) => Promise<void> }) {
  const [id, setId] = useState('');
  const [secret, setSecret] = useState('');
  const [weight, setWeight] = useState('');
  return (
    <form
      class="inline-form"
      aria-label={`Add a key to ${props.upstream}`}
      onSubmit={async (event) => {
        event.preventDefault();
        const body: Record<string, unknown> = { key: secret };
        if (id.trim()) body.id = id.trim();
        if (weight.trim()) body.weight = Number(weight);
        setSecret('');
        await props.act('Key added.', () => api('POST', path(props.upstream, 'keys'), body));
        setId('');
        setWeight('');
      }}
    >
      <Field label={`New key id for ${props.upstream} (optional)`} value={id} onInput={setId} />
      <Field label={`Secret key for ${props.upstream}`} type="password" autoComplete="new-password" value={secret} onInput={setSecret} required />
      <Field label="Weight (optional)" value={weight} onInput={setWeight} inputMode="decimal" />
      <button type="submit">Add key to {props.upstream}</button>
    </form>
  );
}

function AddUpstream(props: { onDone: () => void }) {
  const [id, setId] = useState('');
  const [baseUrl, setBaseUrl] = useState('');
  const [error, setError] = useState<Error | undefined>();
  return (
    <form
      class="panel"
      aria-label="New upstream"
      onSubmit={async (event) => {
        event.preventDefault();
        setError(undefined);
        try {
          await api('POST', '/admin/upstreams', { id: id.trim(), baseUrl: baseUrl.trim() });
          props.onDone();
        } catch (err) {
          setError(err as Error);
        }
      }}
    >
      <h2>New upstream</h2>
      <Field label="Upstream id" value={id} onInput={setId} required />
      <Field label="Base URL" value={baseUrl} onInput={setBaseUrl} placeholder="https://api.openai.com/v1" required />
      <ErrorNote error={error} />
      <SubmitOrCancel submit="Add" onCancel={props.onDone} />
    </form>
  );
}
