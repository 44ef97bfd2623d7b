import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { canEdit, useSession } from '../session';
import { Confirm, ErrorText, Field, formatTime, useFormErrors } from '../ui';
import { useList } from './useList';

interface SecretRow {
  name: string;
  created_at: string;
  updated_at: string;
}

/** Secrets for `{{ secrets.NAME }}`: values go in, never come back out. */
export function Secrets() {
  const session = useSession();
  const { items, error, reload } = useList<SecretRow>('/secrets');
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [deleting, setDeleting] = useState<string | null>(null);
  const errors = useFormErrors();

  const save = async (e: FormEvent) => {
    e.preventDefault();
    errors.clear();
    try {
      await api('PUT', `/secrets/${encodeURIComponent(name)}`, { value });
      setName('');
      setValue('');
      reload();
    } catch (err) {
      errors.set(err as Error);
    }
  };

  const remove = async (secret: string) => {
    setDeleting(null);
    await api('DELETE', `/secrets/${encodeURIComponent(secret)}`).catch((err) => errors.set(err));
    reload();
  };

  return (
    <section>
      <p className="muted">Stored encrypted; templates read them as secrets.NAME and runs record them as ***.</p>
      {canEdit(session) && (
        <form onSubmit={save} className="inline-form" aria-label="Set secret">
          <Field label="Secret name" error={errors.field('name')}>
            <input name="secret-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="PD_ROUTING_KEY" />
          </Field>
          <Field label="Value" error={errors.field('value')}>
            <input name="secret-value" type="password" value={value} onChange={(e) => setValue(e.target.value)} />
          </Field>
          <button type="submit" className="primary">
            Save secret
          </button>
        </form>
      )}
      <ErrorText text={errors.general ?? error} />
      <table className="list" aria-label="Secrets">
        <thead>
          <tr>
            <th>Name</th>
            <th>Created</th>
            <th>Updated</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {items?.map((s) => (
            <tr key={s.name}>
              <td>{s.name}</td>
              <td>{formatTime(s.created_at)}</td>
              <td>{formatTime(s.updated_at)}</td>
              <td className="actions">
                {canEdit(session) && (
                  <button className="small danger" onClick={() => setDeleting(s.name)}>
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
          {items?.length === 0 && (
            <tr>
              <td colSpan={4} className="muted">
                No secrets yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {deleting && (
        <Confirm
          message={
            <>
              Delete secret <b>{deleting}</b>? Workflows that read it will fail.
            </>
          }
          onConfirm={() => remove(deleting)}
          onCancel={() => setDeleting(null)}
        />
      )}
    </section>
  );
}
