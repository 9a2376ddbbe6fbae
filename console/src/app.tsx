// The console's frame: the sign-in form until there is a session, then the navigation of the
// role's pages and the page of the current route.
import { useEffect } from 'preact/hooks';
import { whenSignedOut } from './api';
import { Link } from './ui';
import { type Session, forget, loadSession, signOut, useSession } from './session';
import { navigate, useRoute } from './router';
import { SignIn } from './pages/sign-in';
import { Overview } from './pages/overview';
import { Users } from './pages/users';
import { UserPage } from './pages/user';
import { Upstreams } from './pages/upstreams';
import { Requests } from './pages/requests';
import { RequestPage } from './pages/request';
import { Usage } from './pages/usage';
import { Audit } from './pages/audit';
import { Playground } from './pages/playground';

interface NavItem {
  path: string;
  text: string;
}

function navOf(role: Session['role']): NavItem[] {
  if (role === 'user') {
    return [
      { path: '/', text: 'Overview' },
      { path: '/keys', text: 'Keys' },
      { path: '/requests', text: 'Requests' },
      { path: '/usage', text: 'Usage' },
      { path: '/playground', text: 'Playground' },
    ];
  }
  return [
    { path: '/', text: 'Overview' },
    { path: '/users', text: 'Users' },
    { path: '/upstreams', text: 'Upstreams' },
    { path: '/requests', text: 'Requests' },
    { path: '/usage', text: 'Usage' },
    { path: '/audit', text: 'Audit' },
    { path: '/playground', text: 'Playground' },
  ];
}

function pageOf(path: string, session: Session) {
  const admin = session.role === 'admin';
  const [, first, second] = path.split('/').map((part) => decodeURIComponent(part));
  if (path === '/') return <Overview session={session} />;
  if (first === 'requests' && second) return <RequestPage session={session} requestId={second} />;
  if (first === 'requests') return <Requests session={session} />;
  if (first === 'usage') return <Usage session={session} />;
  if (first === 'playground') return <Playground session={session} />;
  if (!admin && first === 'keys') return <UserPage session={session} />;
  if (admin && first === 'users' && second) return <UserPage session={session} userId={second} />;
  if (admin && first === 'users') return <Users />;
  if (admin && first === 'upstreams') return <Upstreams />;
  if (admin && first === 'audit') return <Audit />;
  return (
    <section class="page">
      <h1 id="page-title" tabIndex={-1}>
        Not found
      </h1>
      <p>
        There is no page here. <Link to="/">Go to the overview</Link>.
      </p>
    </section>
  );
}

export function App() {
  const { session, checked } = useSession();
  const { path } = useRoute();

  useEffect(() => {
    whenSignedOut(forget);
    void loadSession();
  }, []);

  // A new page moves the focus to its title, so a screen reader announces it and Tab starts there.
  useEffect(() => {
    document.getElementById('page-title')?.focus({ preventScroll: true });
  }, [path, session?.role]);

  if (!checked) return <p role="status">Loading…</p>;
  if (!session) return <SignIn />;

  const top = `/${path.split('/')[1] ?? ''}`;
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">keyrelay</span>
        <nav aria-label="Pages">
          <ul>
            {navOf(session.role).map((item) => (
              <li key={item.path}>
                <Link to={item.path} current={item.path === top || (item.path === '/' && path === '/')}>
                  {item.text}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span>{session.role === 'admin' ? 'Admin' : `User ${session.user?.id ?? ''}`}</span>
          <button
            type="button"
            onClick={async () => {
              await signOut();
              navigate('/', true);
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main">{pageOf(path, session)}</main>
    </div>
  );
}
