import { Fragment, useState } from 'react';
import { ReactFlowProvider } from '@xyflow/react';
import { api, type Execution, type WorkflowSummary } from '../api';
import { Link, navigate } from '../router';
import { canEdit, useSession } from '../session';
import { ErrorText, formatDuration, formatTime, Json, StatusBadge } from '../ui';
import { usePoll } from '../usePoll';
import { RunGraph } from './RunGraph';

const FINAL = ['succeeded', 'failed', 'cancelled', 'timed_out'];

/** One execution: the graph by status, the steps to the millisecond, the Alert Body as
 * received; Replay, Cancel, and the decision on a waiting approval. */
export function ExecutionDetail({ id }: { id: string }) {
  const session = useSession();
  const [ex, setEx] = useState<Execution | null>(null);
  const [doc, setDoc] = useState<WorkflowSummary | null>(null);
  const [body, setBody] = useState<string | null>(null);
  const [tab, setTab] = useState<'steps' | 'body'>('steps');
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<string>();

  usePoll(
    async () => {
      if (ex && FINAL.includes(ex.status)) return;
      try {
        const x = await api<Execution>('GET', `/executions/${id}`);
        setEx(x);
        if (!doc) setDoc(await api<WorkflowSummary>('GET', `/workflows/${encodeURIComponent(x.workflow)}?version=${x.version}`));
        if (body === null) setBody(await api<string>('GET', `/executions/${id}/input`, undefined, { raw: true }));
      } catch (e) {
        setError((e as Error).message);
      }
    },
    1500,
    [id, ex?.status],
  );

  if (!ex) return error ? <ErrorText text={error} /> : <p className="loading">Loading…</p>;

  const act = async (path: string, body?: unknown) => {
    setError(undefined);
    try {
      const r = await api<{ executions?: string[] }>('POST', `/executions/${id}/${path}`, body ?? {});
      if (r?.executions?.[0]) navigate(`/executions/${r.executions[0]}`);
      else setEx(await api<Execution>('GET', `/executions/${id}`));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const waitingApproval = ex.steps?.find(
    (s) => s.status === 'waiting' && typeof s.output === 'object' && s.output !== null && 'approve_url' in s.output,
  );

  return (
    <div className="page">
      <div className="row between">
        <h1>
          Execution <span className="mono">{ex.id}</span>
        </h1>
        {canEdit(session) && (
          <div className="row">
            {waitingApproval && (
              <>
                <button onClick={() => act('approval', { decision: 'approve', step: waitingApproval.id })}>Approve</button>
                <button onClick={() => act('approval', { decision: 'deny', step: waitingApproval.id })}>Deny</button>
              </>
            )}
            <button onClick={() => act('replay')}>Replay</button>
            {!FINAL.includes(ex.status) && (
              <button className="danger" onClick={() => act('cancel')}>
                Cancel
              </button>
            )}
          </div>
        )}
      </div>
      <dl className="facts">
        <dt>Workflow</dt>
        <dd>
          <Link to={`/workflows/${encodeURIComponent(ex.workflow)}`}>{ex.workflow}</Link> version {ex.version}
        </dd>
        <dt>Status</dt>
        <dd>
          <StatusBadge status={ex.status} /> {ex.error && <span className="error-inline">{ex.error}</span>}
        </dd>
        <dt>Trigger</dt>
        <dd>
          {ex.trigger.type}
          {ex.replay_of && (
            <>
              {' '}
              (replay of <Link to={`/executions/${ex.replay_of}`}>{ex.replay_of.slice(-12)}</Link>)
            </>
          )}
        </dd>
        <dt>Start / end</dt>
        <dd>
          {formatTime(ex.started_at)} → {formatTime(ex.finished_at)} ({formatDuration(ex.started_at, ex.finished_at)})
        </dd>
      </dl>
      <ErrorText text={error} />
      <nav className="tabs">
        <button className={tab === 'steps' ? 'active' : ''} onClick={() => setTab('steps')}>
          Steps
        </button>
        <button className={tab === 'body' ? 'active' : ''} onClick={() => setTab('body')}>
          Alert Body
        </button>
      </nav>
      {tab === 'body' ? (
        <pre className="code alert-body" data-testid="alert-body">
          {body}
        </pre>
      ) : (
        <>
          {doc?.document && (
            <ReactFlowProvider>
              <RunGraph document={doc.document} steps={ex.steps ?? []} status={ex.status} />
            </ReactFlowProvider>
          )}
          <table className="list" aria-label="Steps">
            <thead>
              <tr>
                <th>Step</th>
                <th>Action</th>
                <th>Status</th>
                <th>Attempts</th>
                <th>Start</th>
                <th>End</th>
                <th>Duration</th>
              </tr>
            </thead>
            <tbody>
              {ex.steps?.map((s) => (
                <Fragment key={s.id}>
                  <tr className="clickable" onClick={() => setOpen(open === s.id ? null : s.id)} data-step={s.id}>
                    <td>{s.id}</td>
                    <td>{s.uses}</td>
                    <td>
                      <StatusBadge status={s.status} />
                    </td>
                    <td>{s.attempts}</td>
                    <td>{formatTime(s.started_at)}</td>
                    <td>{formatTime(s.finished_at)}</td>
                    <td>{formatDuration(s.started_at, s.finished_at)}</td>
                  </tr>
                  {open === s.id && (
                    <tr className="step-detail">
                      <td colSpan={7}>
                        {s.error && <p className="error">{s.error}</p>}
                        <div className="io">
                          <div>
                            <h4>Input</h4>
                            <Json value={s.input} />
                          </div>
                          <div>
                            <h4>Output</h4>
                            <Json value={s.output} />
                          </div>
                        </div>
                        {s.attempt_log != null && (
                          <>
                            <h4>Attempts</h4>
                            <Json value={s.attempt_log} />
                          </>
                        )}
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}
