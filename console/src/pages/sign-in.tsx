// Sign-in: the admin token or a user's own sk-kr- key (POST /console/api/session).
import { useState } from 'preact/hooks';
import { signIn } from '../session';
import { ErrorNote } from '../ui';

export function SignIn() {
  const [token, setToken] = useState('');
  const [error, setError] = useState<Error | undefined>();
  const [busy, setBusy] = useState(false);
  return (
    <main class="sign-in" id="main">
      <h1 id="page-title" tabIndex={-1}>
        keyrelay console
      </h1>
      <form
        onSubmit={async (event) => {
          event.preventDefault();
          setBusy(true);
          setError(undefined);
          try {
            await signIn(token.trim());
            setToken('');
          } catch (err) {
            setError(err as Error);
          } finally {
            setBusy(false);
          }
        }}
      >
        <div class="field">
          <label for="sign-in-token">Admin token or API key</label>
          <input
            id="sign-in-token"
            name="token"
            type="password"
            autoComplete="current-password"
            required
            value={token}
            onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)}
          />
          <small class="hint">The gateway's admin token (KEYRELAY_ADMIN_TOKEN), or your own key, sk-kr-…</small>
        </div>
        <ErrorNote error={error} />
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
