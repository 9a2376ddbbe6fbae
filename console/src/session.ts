// The signed-in session as the page knows it. The cookie itself is HttpOnly: the page only holds
// what POST/GET /console/api/session answered (role, user, CSRF token).
import { useEffect, useState } from 'preact/hooks';
import { api, setCsrfToken } from './api';

export interface Session {
  role: 'admin' | 'user';
  user: { id: string; name?: string | null } | null;
  csrfToken: string;
  expiresAt: string;
}

let current: Session | null = null;
let checked = false;
const listeners = new Set<() => void>();
/** The sk-kr- key the user signed in with during this page's life, for the Playground. Memory only:
 * never localStorage, sessionStorage or a cookie; gone on reload. */
let signInKey = '';

function set(session: Session | null): void {
  current = session;
  checked = true;
  setCsrfToken(session?.csrfToken ?? '');
  for (const listener of listeners) listener();
}

export function useSession(): { session: Session | null; checked: boolean } {
  const [, setRound] = useState(0);
  useEffect(() => {
    const listener = () => setRound((r) => r + 1);
    listeners.add(listener);
    return () => void listeners.delete(listener);
  }, []);
  return { session: current, checked };
}

export const session = (): Session | null => current;
export const rememberedKey = (): string => signInKey;

export async function loadSession(): Promise<void> {
  try {
    set(await api<Session>('GET', '/console/api/session'));
  } catch {
    set(null);
  }
}

export async function signIn(token: string): Promise<void> {
  const answer = await api<Session>('POST', '/console/api/session', { token });
  signInKey = token.startsWith('sk-kr-') ? token : '';
  set(answer);
}

export async function signOut(): Promise<void> {
  try {
    await api('DELETE', '/console/api/session');
  } finally {
    signInKey = '';
    set(null);
  }
}

/** The session ended on the server (401 on a call): back to the sign-in form. */
export function forget(): void {
  signInKey = '';
  set(null);
}

/** Where the role's data lives: an admin reads /admin, a user only their own under /console/api/me. */
export function paths(role: Session['role']) {
  const admin = role === 'admin';
  return {
    requests: admin ? '/admin/requests' : '/console/api/me/requests',
    stream: admin ? '/admin/requests/stream' : '/console/api/me/requests/stream',
    usage: admin ? '/admin/usage' : '/console/api/me/usage',
    series: admin ? '/admin/usage/series' : '/console/api/me/usage/series',
  };
}
