import { Link } from '../router';
import { useSession } from '../session';
import { Keys } from './Keys';
import { Secrets } from './Secrets';
import { Users } from './Users';
import { Tokens } from './Tokens';

const TABS: [string, string][] = [
  ['keys', 'API Keys'],
  ['secrets', 'Secrets'],
  ['tokens', 'My API Tokens'],
  ['users', 'Users'],
];

export function Settings({ tab }: { tab: string }) {
  const session = useSession();
  const tabs = TABS.filter(([id]) => id !== 'users' || session.role === 'admin');
  return (
    <div className="page">
      <h1>Settings</h1>
      <nav className="tabs">
        {tabs.map(([id, label]) => (
          <Link key={id} to={`/settings/${id}`} className={tab === id ? 'active' : ''}>
            {label}
          </Link>
        ))}
      </nav>
      {tab === 'keys' && <Keys />}
      {tab === 'secrets' && <Secrets />}
      {tab === 'tokens' && <Tokens />}
      {tab === 'users' && <Users />}
    </div>
  );
}
