import { useState } from 'react';
import { api, type Execution, type WorkflowSummary } from '../api';
import { Link, navigate, useLocation } from '../router';
import { ErrorText, formatDuration, formatTime, StatusBadge } from '../ui';
import { usePoll } from '../usePoll';
import { useList } from '../settings/useList';

export const STATUSES = ['pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled', 'timed_out'];

const PERIODS: [string, string, number | null][] = [
  ['all', 'Any time', null],
  ['15m', 'Last 15 minutes', 15 * 60_000],
  ['1h', 'Last hour', 3600_000],
  ['24h', 'Last 24 hours', 86400_000],
  ['7d', 'Last 7 days', 7 * 86400_000],
];

/** Executions: a counter per status, filters (kept in the URL), rows that update live. */
export function Executions() {
  const { query } = useLocation();
  const workflow = query.get('workflow') ?? '';
  const status = query.get('status') ?? '';
  const period = query.get('period') ?? 'all';
  const workflows = useList<WorkflowSummary>('/workflows');
  const [rows, setRows] = useState<Execution[] | null>(null);
  const [counts, setCounts] = useState<Record<string, number>>({});
  const [error, setError] = useState<string>();

  const setFilter = (key: string, value: string) => {
    const q = new URLSearchParams(query);
    if (value) q.set(key, value);
    else q.delete(key);
    navigate(`/executions?${q}`, true);
  };

  usePoll(
    async () => {
      const q = new URLSearchParams({ summary: 'true', limit: '200' });
      const c = new URLSearchParams();
      if (workflow) {
        q.set('workflow', workflow);
        c.set('workflow', workflow);
      }
      if (status) q.set('status', status);
      const ms = PERIODS.find(([p]) => p === period)?.[2];
      if (ms) {
        const since = new Date(Date.now() - ms).toISOString();
        q.set('since', since);
        c.set('since', since);
      }
      try {
        const [list, counted] = await Promise.all([
          api<Execution[]>('GET', `/executions?${q}`),
          api<Record<string, number>>('GET', `/executions/counts?${c}`),
        ]);
        setRows(list);
        setCounts(counted);
        setError(undefined);
      } catch (e) {
        setError((e as Error).message);
      }
    },
    2000,
    [workflow, status, period],
  );

  return (
    <div className="page">
      <h1>Executions</h1>
      <div className="counters" aria-label="Executions per status">
        {STATUSES.map((s) => (
          <button
            key={s}
            className={`counter status-${s}${status === s ? ' active' : ''}`}
            onClick={() => setFilter('status', status === s ? '' : s)}
            data-status={s}
          >
            <span className="count">{counts[s] ?? 0}</span>
            <span>{s}</span>
          </button>
        ))}
      </div>
      <div className="filters">
        <label>
          Workflow{' '}
          <select name="workflow" value={workflow} onChange={(e) => setFilter('workflow', e.target.value)}>
            <option value="">All</option>
            {workflows.items?.map((w) => (
              <option key={w.id}>{w.id}</option>
            ))}
          </select>
        </label>
        <label>
          Status{' '}
          <select name="status" value={status} onChange={(e) => setFilter('status', e.target.value)}>
            <option value="">All</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Time{' '}
          <select name="period" value={period} onChange={(e) => setFilter('period', e.target.value === 'all' ? '' : e.target.value)}>
            {PERIODS.map(([p, label]) => (
              <option key={p} value={p}>
                {label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorText text={error} />
      <table className="list" aria-label="Executions">
        <thead>
          <tr>
            <th>Execution</th>
            <th>Workflow</th>
            <th>Status</th>
            <th>Trigger</th>
            <th>Start</th>
            <th>End</th>
            <th>Duration</th>
          </tr>
        </thead>
        <tbody>
          {rows?.map((x) => (
            <tr key={x.id} data-execution={x.id}>
              <td>
                <Link to={`/executions/${x.id}`}>{x.id.slice(-12)}</Link>
              </td>
              <td>
                {x.workflow} <span className="muted">v{x.version}</span>
              </td>
              <td>
                <StatusBadge status={x.status} />
              </td>
              <td>{x.trigger.type}</td>
              <td>{formatTime(x.started_at ?? x.created_at)}</td>
              <td>{formatTime(x.finished_at)}</td>
              <td>{formatDuration(x.started_at, x.finished_at)}</td>
            </tr>
          ))}
          {rows?.length === 0 && (
            <tr>
              <td colSpan={7} className="muted">
                No executions match.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}
