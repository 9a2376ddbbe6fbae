// Audit: every change made through the admin API or this console, newest first (GET /admin/audit).
import { useState } from 'preact/hooks';
import { query, useApi } from '../api';
import { Empty, ErrorNote, Field, Loading, Page, Pager, Table, Time } from '../ui';

interface Entry {
  id: string;
  time: string;
  actor: string;
  action: string;
  target: string;
  requestId?: string;
  ip?: string;
}

const PAGE = 50;

export function Audit() {
  const [target, setTarget] = useState('');
  const [cursors, setCursors] = useState<string[]>([]);
  const page = useApi<{ data: Entry[] }>(`/admin/audit${query({ limit: PAGE, before: cursors[cursors.length - 1], target: target.trim() })}`);
  const rows = page.data?.data ?? [];
  const last = rows.length === PAGE ? rows[rows.length - 1]?.id : undefined;
  return (
    <Page title="Audit">
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <Field
          label="Target"
          value={target}
          placeholder="user:alice"
          onInput={(value) => {
            setTarget(value);
            setCursors([]);
          }}
        />
      </form>
      <ErrorNote error={page.error} />
      <Loading when={page.loading && !page.data} />
      {page.data && rows.length === 0 && <Empty>{target ? 'No entry for this target. Targets read like user:alice or pool_key:main/k1.' : 'No changes recorded yet. Creating a user or a key records one here.'}</Empty>}
      {rows.length > 0 && (
        <Table caption="Audit log" head={['Time', 'Actor', 'Action', 'Target', 'Address', 'Request id']}>
          {rows.map((e) => (
            <tr key={e.id}>
              <td>
                <Time iso={e.time} />
              </td>
              <td>{e.actor}</td>
              <td>{e.action}</td>
              <td class="clip">{e.target}</td>
              <td>{e.ip ?? '–'}</td>
              <td>
                <code>{e.requestId ?? '–'}</code>
              </td>
            </tr>
          ))}
        </Table>
      )}
      <Pager
        label="Pages of the audit log"
        onPrevious={cursors.length ? () => setCursors(cursors.slice(0, -1)) : undefined}
        onNext={last ? () => setCursors([...cursors, last]) : undefined}
      />
    </Page>
  );
}
