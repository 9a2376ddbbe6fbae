// Users: the list, searched and paged by the gateway (GET /admin/users?search=&limit=&offset=), and
// the form that creates one.
import { useState } from 'preact/hooks';
import { api, query, useApi } from '../api';
import { navigate } from '../router';
import { Empty, ErrorNote, Field, Link, Loading, Page, Pager, SubmitOrCancel, Table, Time } from '../ui';
import { num } from '../format';
import type { User } from '../types';
import { UserFieldset, bodyOf, fieldsOf } from './user-form';

const PAGE = 25;

export function Users() {
  const [search, setSearch] = useState('');
  const [offset, setOffset] = useState(0);
  const [creating, setCreating] = useState(false);
  const list = useApi<{ data: User[]; total?: number }>(`/admin/users${query({ search, limit: PAGE, offset })}`);
  const total = list.data?.total ?? list.data?.data.length ?? 0;
  return (
    <Page
      title="Users"
      actions={
        <button type="button" class="primary" onClick={() => setCreating(!creating)} aria-expanded={creating}>
          Create user
        </button>
      }
    >
      {creating && <CreateUser onDone={() => setCreating(false)} />}
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <Field
          label="Search users"
          type="search"
          inputMode="search"
          value={search}
          onInput={(value) => {
            setSearch(value);
            setOffset(0);
          }}
        />
      </form>
      <ErrorNote error={list.error} />
      <Loading when={list.loading && !list.data} />
      {list.data && list.data.data.length === 0 && (
        <Empty>{search ? 'No user matches this search. Try part of an id or a name.' : 'No users yet. Create one with “Create user”, then give them a key.'}</Empty>
      )}
      {list.data && list.data.data.length > 0 && (
        <>
          <p class="muted">
            {num(offset + 1)}–{num(offset + list.data.data.length)} of {num(total)}
          </p>
          <Table caption="Users" head={['Id', 'Name', 'Models', 'Expires', 'Created']}>
            {list.data.data.map((user) => (
              <tr key={user.id}>
                <td>
                  <Link to={`/users/${encodeURIComponent(user.id)}`}>{user.id}</Link>
                </td>
                <td>{user.name ?? ''}</td>
                <td>{user.models?.join(', ') ?? 'any'}</td>
                <td>
                  <Time iso={user.expiresAt} />
                </td>
                <td>
                  <Time iso={user.createdAt} />
                </td>
              </tr>
            ))}
          </Table>
          <Pager
            label="Pages of users"
            onPrevious={offset > 0 ? () => setOffset(Math.max(0, offset - PAGE)) : undefined}
            onNext={offset + PAGE < total ? () => setOffset(offset + PAGE) : undefined}
          />
        </>
      )}
    </Page>
  );
}

function CreateUser(props: { onDone: () => void }) {
  const [id, setId] = useState('');
  const [fields, setFields] = useState(fieldsOf());
  const [error, setError] = useState<Error | undefined>();
  return (
    <form
      class="panel"
      aria-label="New user"
      onSubmit={async (event) => {
        event.preventDefault();
        setError(undefined);
        try {
          const body = bodyOf(fields);
          const user = await api<User>('POST', '/admin/users', { id: id.trim(), ...body });
          props.onDone();
          navigate(`/users/${encodeURIComponent(user.id)}`);
        } catch (err) {
          setError(err as Error);
        }
      }}
    >
      <h2>New user</h2>
      <Field label="User id" value={id} onInput={setId} required hint="Letters, digits and . _ @ -, up to 64 characters." />
      <UserFieldset fields={fields} onChange={setFields} />
      <ErrorNote error={error} />
      <SubmitOrCancel submit="Create" onCancel={props.onDone} />
    </form>
  );
}
