// A user's page: usage against each limit as bars, the user's settings (admin), and their keys.
// A new key's secret is shown once, right after it is made, with a copy button; it is never kept
// (not in storage, not in this page's state after it is dismissed) and the gateway cannot show it again.
import { useState } from 'preact/hooks';
import { api, useApi } from '../api';
import { dec, num, usd } from '../format';
import { navigate } from '../router';
import type { Session } from '../session';
import { ConfirmButton, Empty, ErrorNote, Field, Link, Loading, Page, SubmitOrCancel, Table, Time, UsageBar } from '../ui';
import type { KeyView, UserWithUsage } from '../types';
import { UserFieldset, bodyOf, fieldsOf } from './user-form';

export function UserPage(props: { session: Session; userId?: string }) {
  const admin = props.session.role === 'admin' && props.userId !== undefined;
  const id = props.userId ?? '';
  const userPath = admin ? `/admin/users/${encodeURIComponent(id)}` : '/console/api/me';
  const keysPath = admin ? `/admin/users/${encodeURIComponent(id)}/keys` : '/console/api/me/keys';
  const revokePath = (keyId: string) => (admin ? `/admin/keys/${encodeURIComponent(keyId)}` : `/console/api/me/keys/${encodeURIComponent(keyId)}`);
  const loaded = useApi<UserWithUsage | { user: UserWithUsage }>(userPath);
  const user = loaded.data && 'user' in loaded.data ? loaded.data.user : (loaded.data as UserWithUsage | undefined);
  const [editing, setEditing] = useState(false);
  const [error, setError] = useState<Error | undefined>();

  return (
    <Page
      title={admin ? `User ${id}` : 'Your keys and usage'}
      actions={
        admin && user ? (
          <>
            <button type="button" onClick={() => setEditing(!editing)} aria-expanded={editing}>
              Edit user
            </button>
            <ConfirmButton
              label="Delete user"
              confirm={`Delete ${id} and stop all their keys`}
              onConfirm={async () => {
                try {
                  await api('DELETE', userPath);
                  navigate('/users');
                } catch (err) {
                  setError(err as Error);
                }
              }}
            />
          </>
        ) : undefined
      }
    >
      {admin && (
        <p>
          <Link to="/users">All users</Link>
        </p>
      )}
      <ErrorNote error={loaded.error ?? error} />
      <Loading when={loaded.loading && !user} />
      {user && editing && (
        <EditUser
          user={user}
          path={userPath}
          onDone={() => {
            setEditing(false);
            loaded.reload();
          }}
        />
      )}
      {user && <UserUsage user={user} />}
      {user && <Keys keysPath={keysPath} revokePath={revokePath} />}
    </Page>
  );
}

function UserUsage(props: { user: UserWithUsage }) {
  const { user } = props;
  const u = user.usage;
  const rate = (r: { limit: number; remaining: number } | null) => (r ? r.limit - r.remaining : 0);
  return (
    <>
      <dl class="facts">
        <div>
          <dt>Name</dt>
          <dd>{user.name ?? '–'}</dd>
        </div>
        <div>
          <dt>Allowed models</dt>
          <dd>{user.models?.join(', ') ?? 'any'}</dd>
        </div>
        <div>
          <dt>Expires</dt>
          <dd>{user.expiresAt ? <Time iso={user.expiresAt} /> : 'never'}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>
            <Time iso={user.createdAt} />
          </dd>
        </div>
      </dl>
      <h2>Usage against limits</h2>
      <div class="bars">
        <UsageBar label="Requests this minute" used={rate(u.minute.requests)} limit={u.minute.requests?.limit ?? user.limits.rpm} text={num} />
        <UsageBar label="Tokens this minute" used={rate(u.minute.tokens)} limit={u.minute.tokens?.limit ?? user.limits.tpm} text={num} />
        <UsageBar label="Tokens today (UTC)" used={u.day.tokens} limit={u.day.limits.tokens} text={num} />
        <UsageBar label="Cost today (UTC)" used={u.day.usd} limit={u.day.limits.usd} text={usd} />
        <UsageBar label="Tokens this month (UTC)" used={u.month.tokens} limit={u.month.limits.tokens} text={num} />
        <UsageBar label="Cost this month (UTC)" used={u.month.usd} limit={u.month.limits.usd} text={usd} />
        <UsageBar label="Requests at once" used={u.concurrent.inFlight} limit={u.concurrent.limit} text={dec} />
      </div>
    </>
  );
}

function EditUser(props: { user: UserWithUsage; path: string; onDone: () => void }) {
  const [fields, setFields] = useState(fieldsOf(props.user));
  const [error, setError] = useState<Error | undefined>();
  return (
    <form
      class="panel"
      aria-label="Edit user"
      onSubmit={async (event) => {
        event.preventDefault();
        setError(undefined);
        try {
          await api('PATCH', props.path, bodyOf(fields));
          props.onDone();
        } catch (err) {
          setError(err as Error);
        }
      }}
    >
      <h2>Edit user</h2>
      <UserFieldset fields={fields} onChange={setFields} />
      <ErrorNote error={error} />
      <SubmitOrCancel submit="Save" onCancel={props.onDone} />
    </form>
  );
}

function Keys(props: { keysPath: string; revokePath: (id: string) => string }) {
  const keys = useApi<{ data: KeyView[] }>(props.keysPath);
  const [name, setName] = useState('');
  const [shown, setShown] = useState<{ id: string; key: string } | null>(null);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  return (
    <div>
      <h2>Keys</h2>
      <form
        class="inline-form"
        aria-label="New key"
        onSubmit={async (event) => {
          event.preventDefault();
          setError(undefined);
          setCopied(false);
          try {
            const created = await api<KeyView & { key: string }>('POST', props.keysPath, name.trim() ? { name: name.trim() } : {});
            setShown({ id: created.id, key: created.key });
            setName('');
            keys.reload();
          } catch (err) {
            setError(err as Error);
          }
        }}
      >
        <Field label="Key name (optional)" value={name} onInput={setName} />
        <button type="submit" class="primary">
          Create key
        </button>
      </form>
      <ErrorNote error={error ?? keys.error} />
      {shown && (
        <div class="once" role="status">
          <p>
            <strong>Copy this key now.</strong> It is shown only this once; the gateway keeps only a digest of it.
          </p>
          <output class="secret" aria-label="New key">
            {shown.key}
          </output>
          <div class="actions">
            <button
              type="button"
              onClick={async () => {
                await navigator.clipboard.writeText(shown.key);
                setCopied(true);
              }}
            >
              {copied ? 'Copied' : 'Copy key'}
            </button>
            <button type="button" onClick={() => setShown(null)}>
              Done
            </button>
          </div>
        </div>
      )}
      {keys.data && keys.data.data.length === 0 && <Empty>No keys yet. Create one above and give it to whoever calls the API.</Empty>}
      {keys.data && keys.data.data.length > 0 && (
        <Table caption="Keys" head={['Key', 'Name', 'Created', 'Expires', 'State', '']}>
          {keys.data.data.map((key) => (
            <tr key={key.id}>
              <td>
                <code>{key.prefix}…</code> <span class="muted">{key.id}</span>
              </td>
              <td>{key.name ?? ''}</td>
              <td>
                <Time iso={key.createdAt} />
              </td>
              <td>{key.expiresAt ? <Time iso={key.expiresAt} /> : 'never'}</td>
              <td>
                {key.revokedAt ? (
                  <>
                    revoked <Time iso={key.revokedAt} />
                  </>
                ) : (
                  'active'
                )}
              </td>
              <td>
                {!key.revokedAt && (
                  <ConfirmButton
                    label={`Revoke ${key.name ?? key.id}`}
                    confirm={`Revoke ${key.name ?? key.id} now`}
                    onConfirm={async () => {
                      try {
                        await api('DELETE', props.revokePath(key.id));
                        if (shown?.id === key.id) setShown(null);
                        keys.reload();
                      } catch (err) {
                        setError(err as Error);
                      }
                    }}
                  />
                )}
              </td>
            </tr>
          ))}
        </Table>
      )}
    </div>
  );
}
