import { useState } from 'react';
import { api, type EventRow, type WorkflowSummary } from '../api';
import { Link, navigate, useLocation } from '../router';
import { ErrorText, formatTime } from '../ui';
import { usePoll } from '../usePoll';
import { useList } from '../settings/useList';

/** Every webhook delivery and what became of it: the answer to "why did my workflow not run". */
export function Events() {
  const { query } = useLocation();
  const workflow = query.get('workflow') ?? '';
  const workflows = useList<WorkflowSummary>('/workflows');
  const [rows, setRows] = useState<EventRow[] | null>(null);
  const [error, setError] = useState<string>();

  usePoll(
    async () => {
      const q = new URLSearchParams({ limit: '200' });
      if (workflow) q.set('workflow', workflow);
      try {
        setRows(await api<EventRow[]>('GET', `/events?${q}`));
        setError(undefined);
      } catch (e) {
        setError((e as Error).message);
      }
    },
    3000,
    [workflow],
  );

  return (
    <div className="page">
      <h1>Events</h1>
      <p className="muted">Deliveries to the webhooks: started, duplicate, filtered, throttled or rejected, and why.</p>
      <div className="filters">
        <label>
          Workflow{' '}
          <select name="workflow" value={workflow} onChange={(e) => navigate(e.target.value ? `/events?workflow=${encodeURIComponent(e.target.value)}` : '/events', true)}>
            <option value="">All</option>
            {workflows.items?.map((w) => (
              <option key={w.id}>{w.id}</option>
            ))}
          </select>
        </label>
      </div>
      <ErrorText text={error} />
      <table className="list" aria-label="Events">
        <thead>
          <tr>
            <th>Received</th>
            <th>Workflow</th>
            <th>Outcome</th>
            <th>Status</th>
            <th>Reason</th>
            <th>Executions</th>
          </tr>
        </thead>
        <tbody>
          {rows?.map((e) => (
            <tr key={e.id} data-outcome={e.outcome}>
              <td>{formatTime(e.received_at)}</td>
              <td>{e.workflow}</td>
              <td>
                <span className={`badge outcome-${e.outcome}`}>{e.outcome}</span>
              </td>
              <td>{e.status_code}</td>
              <td className="reason">{e.reason}</td>
              <td>
                {e.executions.map((x) => (
                  <Link key={x} to={`/executions/${x}`}>
                    {x.slice(-12)}
                  </Link>
                ))}
              </td>
            </tr>
          ))}
          {rows?.length === 0 && (
            <tr>
              <td colSpan={6} className="muted">
                No deliveries yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}
