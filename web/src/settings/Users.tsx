import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { useSession } from '../session';
import { Confirm, ErrorText, Field, formatTime, useFormErrors } from '../ui';
import { useList } from './useList';

interface UserRow {
  name: string;
  role: string;
  created_at: string;
}

const ROLES = ['viewer', 'editor', 'admin'];

/** Admins only: users, their roles, password resets. */
export function Users() {
  const session = useSession();
  const { items, error, reload } = useList<UserRow>('/users');
  const [name, setName] = useState('');
  const [role, setRole] = useState('viewer');
  const [password, setPassword] = useState('');
  const [deleting, setDeleting] = useState<string | null>(null);
  const [resetting, setResetting] = useState<string | null>(null);
  const errors = useFormErrors();
  const rowErrors = useFormErrors();

  const create = async (e: FormEvent) => {
    e.preventDefault();
    errors.clear();
    try {
      await api('POST', '/users', { name, role, password });
      setName('');
      setPassword('');
      reload();
    } catch (err) {
      errors.set(err as Error);
    }
  };

  const change = async (user: string, body: object) => {
    rowErrors.clear();
    try {
      await api('PATCH', `/users/${encodeURIComponent(user)}`, body);
      reload();
      return true;
    } catch (err) {
      rowErrors.set(err as Error);
      return false;
    }
  };

  const remove = async (user: string) => {
    setDeleting(null);
    await api('DELETE', `/users/${encodeURIComponent(user)}`).catch((err) => rowErrors.set(err));
    reload();
  };

  return (
    <section>
      <p className="muted">
        Viewers read everything but secret values; editors also change workflows, keys, secrets and runs; admins also
        manage users.
      </p>
      <form onSubmit={create} className="inline-form" aria-label="Create user">
        <Field label="User name" error={errors.field('name')}>
          <input name="user-name" value={name} onChange={(e) => setName(e.target.value)} />
        </Field>
        <Field label="Role" error={errors.field('role')}>
          <select name="user-role" value={role} onChange={(e) => setRole(e.target.value)}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </Field>
        <Field label="Password" error={errors.field('password')}>
          <input name="user-password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} />
        </Field>
        <button type="submit" className="primary">
          Create user
        </button>
      </form>
      <ErrorText text={errors.general ?? error} />
      <ErrorText text={rowErrors.general ?? rowErrors.field('role') ?? rowErrors.field('password')} />
      <table className="list" aria-label="Users">
        <thead>
          <tr>
            <th>Name</th>
            <th>Role</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {items?.map((u) => (
            <tr key={u.name} data-user={u.name}>
              <td>{u.name}</td>
              <td>
                <select
                  aria-label={`Role of ${u.name}`}
                  value={u.role}
                  onChange={(e) => change(u.name, { role: e.target.value })}
                >
                  {ROLES.map((r) => (
                    <option key={r}>{r}</option>
                  ))}
                </select>
              </td>
              <td>{formatTime(u.created_at)}</td>
              <td className="actions">
                <button className="small" onClick={() => setResetting(u.name)}>
                  Reset password
                </button>
                {u.name !== session.user && (
                  <button className="small danger" onClick={() => setDeleting(u.name)}>
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {deleting && (
        <Confirm
          message={
            <>
              Delete user <b>{deleting}</b> with their sessions and API tokens?
            </>
          }
          onConfirm={() => remove(deleting)}
          onCancel={() => setDeleting(null)}
        />
      )}
      {resetting && (
        <ResetPassword
          user={resetting}
          onDone={() => setResetting(null)}
          save={(password) => change(resetting, { password })}
          error={rowErrors.field('password')}
        />
      )}
    </section>
  );
}

function ResetPassword({
  user,
  save,
  onDone,
  error,
}: {
  user: string;
  save: (password: string) => Promise<boolean>;
  onDone: () => void;
  error?: string;
}) {
  const [password, setPassword] = useState('');
  return (
    <div className="modal-backdrop">
      <form
        className="modal"
        role="dialog"
        onSubmit={async (e) => {
          e.preventDefault();
          if (await save(password)) onDone();
        }}
      >
        <p>
          New password for <b>{user}</b>. Their sessions end; their API tokens keep working.
        </p>
        <Field label="New password" error={error}>
          <input name="new-password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoFocus />
        </Field>
        <div className="row end">
          <button type="button" onClick={onDone}>
            Cancel
          </button>
          <button type="submit" className="primary">
            Reset password
          </button>
        </div>
      </form>
    </div>
  );
}
