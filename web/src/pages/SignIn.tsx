import { useState, type FormEvent } from 'react';
import { api, type Session } from '../api';
import { navigate, useLocation } from '../router';
import { ErrorText, Field, useFormErrors } from '../ui';

export function SignIn({ onSignedIn, signedIn }: { onSignedIn: (s: Session) => void; signedIn: boolean }) {
  const { query } = useLocation();
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const errors = useFormErrors();
  const next = query.get('next') || '/workflows';
  if (signedIn) {
    navigate(next, true);
  }

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    errors.clear();
    try {
      const s = await api<Session>('POST', '/session', { name, password });
      onSignedIn(s);
      // Only paths of this app: never an address elsewhere.
      navigate(next.startsWith('/') && !next.startsWith('//') ? next : '/workflows', true);
    } catch (err) {
      errors.set(err as Error);
    }
  };

  return (
    <div className="signin">
      <form onSubmit={submit} className="card">
        <h1>alertflow</h1>
        <p className="muted">Sign in to continue.</p>
        <Field label="User name" error={errors.field('name')}>
          <input name="name" autoComplete="username" value={name} onChange={(e) => setName(e.target.value)} autoFocus />
        </Field>
        <Field label="Password" error={errors.field('password')}>
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </Field>
        <ErrorText text={errors.general} />
        <button type="submit" className="primary">
          Sign in
        </button>
      </form>
    </div>
  );
}
