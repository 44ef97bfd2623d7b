import { useCallback, useEffect, useState } from 'react';
import { api, SESSION_LOST, setCsrf, type Session } from './api';
import { Link, match, navigate, useLocation } from './router';
import { SessionContext } from './session';
import { SignIn } from './pages/SignIn';
import { Workflows } from './pages/Workflows';
import { Builder } from './builder/Builder';
import { Executions } from './pages/Executions';
import { ExecutionDetail } from './pages/ExecutionDetail';
import { Events } from './pages/Events';
import { Settings } from './settings/Settings';

export function App() {
  const { path } = useLocation();
  const [session, setSession] = useState<Session | null | undefined>(undefined);

  const accept = useCallback((s: Session | null) => {
    setCsrf(s?.csrf ?? '');
    setSession(s);
  }, []);

  useEffect(() => {
    api<Session>('GET', '/session')
      .then(accept)
      .catch(() => accept(null));
  }, [accept]);

  // A lost session (expired, signed out elsewhere, password reset) goes to sign-in and comes
  // back here after; pages keep unsaved work in sessionStorage meanwhile.
  useEffect(() => {
    const lost = () => {
      accept(null);
      if (location.pathname !== '/signin') {
        navigate(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
      }
    };
    window.addEventListener(SESSION_LOST, lost);
    return () => window.removeEventListener(SESSION_LOST, lost);
  }, [accept]);

  if (session === undefined) return <div className="loading">Loading…</div>;
  if (session === null || path === '/signin') {
    return <SignIn onSignedIn={accept} signedIn={session !== null} />;
  }

  const signOut = async () => {
    await api('DELETE', '/session').catch(() => undefined);
    accept(null);
    navigate('/signin');
  };

  return (
    <SessionContext.Provider value={session}>
      <div className="app">
        <header className="topbar">
          <span className="brand">alertflow</span>
          <nav>
            <Link to="/workflows" className={path.startsWith('/workflows') ? 'active' : ''}>
              Workflows
            </Link>
            <Link to="/executions" className={path.startsWith('/executions') ? 'active' : ''}>
              Executions
            </Link>
            <Link to="/events" className={path.startsWith('/events') ? 'active' : ''}>
              Events
            </Link>
            <Link to="/settings/keys" className={path.startsWith('/settings') ? 'active' : ''}>
              Settings
            </Link>
          </nav>
          <span className="who">
            {session.user} <span className="role">({session.role})</span>
            <button className="small" onClick={signOut}>
              Sign out
            </button>
          </span>
        </header>
        <main>
          <Page path={path} />
        </main>
      </div>
    </SessionContext.Provider>
  );
}

function Page({ path }: { path: string }) {
  let m;
  if (path === '/' || path === '/workflows') return <Workflows />;
  if ((m = match('/workflows/:id', path))) return <Builder key={m.id} id={m.id} />;
  if (path === '/executions') return <Executions />;
  if ((m = match('/executions/:id', path))) return <ExecutionDetail key={m.id} id={m.id} />;
  if (path === '/events') return <Events />;
  if ((m = match('/settings/:tab', path))) return <Settings tab={m.tab} />;
  return <p>Nothing here. <Link to="/workflows">Workflows</Link></p>;
}
