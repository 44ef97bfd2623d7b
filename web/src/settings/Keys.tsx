import { useState, type FormEvent } from 'react';
import { api, type Key } from '../api';
import { canEdit, useSession } from '../session';
import { Confirm, CopyButton, ErrorText, Field, formatTime, useFormErrors } from '../ui';
import { useList } from './useList';

/** API keys: what Alertmanager (or any sender) presents to a workflow's webhook. */
export function Keys() {
  const session = useSession();
  const { items, error, reload } = useList<Key>('/keys');
  const [name, setName] = useState('');
  const [created, setCreated] = useState<Key | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  const errors = useFormErrors();

  const create = async (e: FormEvent) => {
    e.preventDefault();
    errors.clear();
    try {
      setCreated(await api<Key>('POST', '/keys', { name }));
      setName('');
      reload();
    } catch (err) {
      errors.set(err as Error);
    }
  };

  const remove = async (key: string) => {
    setDeleting(null);
    try {
      await api('DELETE', `/keys/${encodeURIComponent(key)}`);
    } catch (err) {
      errors.set(err as Error);
    }
    reload();
  };

  return (
    <section>
      <p className="muted">
        A workflow's webhook accepts the keys its trigger names. Alertmanager sends one in its receiver URL.
      </p>
      {canEdit(session) && (
        <form onSubmit={create} className="inline-form" aria-label="Create API key">
          <Field label="Key name" error={errors.field('name')}>
            <input name="key-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="ops" />
          </Field>
          <button type="submit" className="primary">
            Create key
          </button>
        </form>
      )}
      <ErrorText text={errors.general ?? error} />
      {created?.value && (
        <div className="notice" data-testid="new-key">
          Key <b>{created.name}</b> created: <code className="secret">{created.value}</code>{' '}
          <CopyButton text={created.value} /> It stays available in the workflow builder's trigger panel.
        </div>
      )}
      <table className="list" aria-label="API keys">
        <thead>
          <tr>
            <th>Name</th>
            <th>Created</th>
            <th>Last used</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {items?.map((k) => (
            <tr key={k.name}>
              <td>{k.name}</td>
              <td>{formatTime(k.created_at)}</td>
              <td>{k.last_used_at ? formatTime(k.last_used_at) : 'never'}</td>
              <td className="actions">
                {canEdit(session) && (
                  <button className="small danger" onClick={() => setDeleting(k.name)}>
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
          {items?.length === 0 && (
            <tr>
              <td colSpan={4} className="muted">
                No API keys yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {deleting && (
        <Confirm
          message={
            <>
              Delete API key <b>{deleting}</b>? Senders that use it will be refused (401).
            </>
          }
          onConfirm={() => remove(deleting)}
          onCancel={() => setDeleting(null)}
        />
      )}
    </section>
  );
}
