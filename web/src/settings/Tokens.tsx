import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { Confirm, CopyButton, ErrorText, Field, formatTime, useFormErrors } from '../ui';
import { useList } from './useList';

interface TokenRow {
  name: string;
  value?: string;
  created_at: string;
  last_used_at: string | null;
}

/** The signed-in user's API tokens for the CLI (`--token`); each acts with the user's role. */
export function Tokens() {
  const { items, error, reload } = useList<TokenRow>('/tokens');
  const [name, setName] = useState('');
  const [created, setCreated] = useState<TokenRow | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  const errors = useFormErrors();

  const create = async (e: FormEvent) => {
    e.preventDefault();
    errors.clear();
    try {
      setCreated(await api<TokenRow>('POST', '/tokens', { name }));
      setName('');
      reload();
    } catch (err) {
      errors.set(err as Error);
    }
  };

  const remove = async (token: string) => {
    setDeleting(null);
    await api('DELETE', `/tokens/${encodeURIComponent(token)}`).catch((err) => errors.set(err));
    reload();
  };

  return (
    <section>
      <p className="muted">
        For the command line: <code>alertflow --token TOKEN …</code> or <code>ALERTFLOW_TOKEN</code>.
      </p>
      <form onSubmit={create} className="inline-form" aria-label="Create API token">
        <Field label="Token name" error={errors.field('name')}>
          <input name="token-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="laptop" />
        </Field>
        <button type="submit" className="primary">
          Create token
        </button>
      </form>
      <ErrorText text={errors.general ?? error} />
      {created?.value && (
        <div className="notice">
          Token <b>{created.name}</b> (shown once): <code className="secret">{created.value}</code>{' '}
          <CopyButton text={created.value} />
        </div>
      )}
      <table className="list" aria-label="API tokens">
        <thead>
          <tr>
            <th>Name</th>
            <th>Created</th>
            <th>Last used</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {items?.map((t) => (
            <tr key={t.name}>
              <td>{t.name}</td>
              <td>{formatTime(t.created_at)}</td>
              <td>{t.last_used_at ? formatTime(t.last_used_at) : 'never'}</td>
              <td className="actions">
                <button className="small danger" onClick={() => setDeleting(t.name)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {deleting && (
        <Confirm
          message={
            <>
              Delete token <b>{deleting}</b>? Commands that use it will be refused.
            </>
          }
          onConfirm={() => remove(deleting)}
          onCancel={() => setDeleting(null)}
        />
      )}
    </section>
  );
}
