import { useState, type FormEvent } from 'react';
import { api, type WorkflowSummary } from '../api';
import { Link, navigate } from '../router';
import { canEdit, useSession } from '../session';
import { Confirm, ErrorText, Field, formatTime } from '../ui';
import { useList } from '../settings/useList';
import { newDraft, saveDraft } from '../builder/draft';

export const TRIGGERS: [string, string][] = [
  ['prometheus', 'Prometheus'],
  ['webhook', 'Webhook'],
  ['manual', 'Manual'],
  ['schedule', 'Schedule'],
];

export function Workflows() {
  const session = useSession();
  const { items, error, reload } = useList<WorkflowSummary>('/workflows');
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<string | null>(null);
  const [deleteError, setDeleteError] = useState<string>();

  const remove = async (id: string) => {
    setDeleting(null);
    await api('DELETE', `/workflows/${encodeURIComponent(id)}`).catch((e: Error) => setDeleteError(e.message));
    reload();
  };

  return (
    <div className="page">
      <div className="row between">
        <h1>Workflows</h1>
        {canEdit(session) && (
          <button className="primary" onClick={() => setCreating(true)}>
            New Workflow
          </button>
        )}
      </div>
      <ErrorText text={error ?? deleteError} />
      <table className="list" aria-label="Workflows">
        <thead>
          <tr>
            <th>Name</th>
            <th>Trigger</th>
            <th>Version</th>
            <th>Steps</th>
            <th>Updated</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {items?.map((w) => (
            <tr key={w.id}>
              <td>
                <Link to={`/workflows/${encodeURIComponent(w.id)}`}>{w.id}</Link>
                {w.description && <div className="muted small-text">{w.description}</div>}
              </td>
              <td>{w.trigger}</td>
              <td>v{w.version}</td>
              <td>{w.steps}</td>
              <td>{formatTime(w.updated_at)}</td>
              <td className="actions">
                <Link to={`/executions?workflow=${encodeURIComponent(w.id)}`}>Executions</Link>
                {canEdit(session) && (
                  <button className="small danger" onClick={() => setDeleting(w.id)}>
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
          {items?.length === 0 && (
            <tr>
              <td colSpan={6} className="muted">
                No workflows yet. Create one, or apply a file with <code>alertflow workflows apply -f FILE</code>.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {creating && (
        <NewWorkflow existing={items?.map((w) => w.id) ?? []} onCancel={() => setCreating(false)} />
      )}
      {deleting && (
        <Confirm
          message={
            <>
              Delete workflow <b>{deleting}</b>? Its webhook stops; its executions stay.
            </>
          }
          onConfirm={() => remove(deleting)}
          onCancel={() => setDeleting(null)}
        />
      )}
    </div>
  );
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

function NewWorkflow({ existing, onCancel }: { existing: string[]; onCancel: () => void }) {
  const [name, setName] = useState('');
  const [trigger, setTrigger] = useState('prometheus');
  const [nameError, setNameError] = useState<string>();

  const create = (e: FormEvent) => {
    e.preventDefault();
    if (!NAME.test(name)) {
      setNameError('use lowercase letters, digits, - and _, starting with a letter or digit (it becomes part of the webhook URL)');
      return;
    }
    if (existing.includes(name)) {
      setNameError(`a workflow named ${name} exists`);
      return;
    }
    saveDraft(name, newDraft(name, trigger));
    navigate(`/workflows/${encodeURIComponent(name)}`);
  };

  return (
    <div className="modal-backdrop">
      <form className="modal" role="dialog" aria-label="New Workflow" onSubmit={create}>
        <h2>New Workflow</h2>
        <Field label="Name" error={nameError} hint="The workflow id, part of its webhook URL.">
          <input name="workflow-name" value={name} onChange={(e) => setName(e.target.value)} autoFocus placeholder="disk-full" />
        </Field>
        <fieldset className="trigger-pick">
          <legend>Trigger</legend>
          {TRIGGERS.map(([value, label]) => (
            <label key={value} className="radio">
              <input type="radio" name="trigger" value={value} checked={trigger === value} onChange={() => setTrigger(value)} />
              {label}
            </label>
          ))}
        </fieldset>
        <div className="row end">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" className="primary">
            Create
          </button>
        </div>
      </form>
    </div>
  );
}
