// The action library: every action the server has, grouped and searchable. Click one to add
// it after the selected node, or drag it onto the graph.
import { useState } from 'react';
import type { DocumentSchema } from '../api';

/** Groups by what an action talks to; an action added to the server later lands in Other. */
const GROUPS: [string, (name: string) => boolean][] = [
  ['Flow', (n) => ['wait', 'approval', 'fail', 'transform'].includes(n)],
  ['HTTP', (n) => n.startsWith('http.')],
  ['Prometheus', (n) => n.startsWith('prometheus.') || n.startsWith('alertmanager.')],
  ['Chat and mail', (n) => /^(slack|msteams|email|discord|telegram|mattermost)\./.test(n)],
  ['Incidents', (n) => /^(pagerduty|opsgenie|jira|servicenow)\./.test(n)],
  ['Other', () => true],
];

export function Library({ schema, onAdd, readOnly }: { schema: DocumentSchema | null; onAdd: (uses: string) => void; readOnly: boolean }) {
  const [filter, setFilter] = useState('');
  const actions = Object.entries(schema?.['x-actions'] ?? {}).filter(
    ([name, a]) =>
      name.includes(filter.toLowerCase()) || String(a.inputs.description ?? '').toLowerCase().includes(filter.toLowerCase()),
  );
  const grouped = new Map<string, string[]>();
  for (const [name] of actions) {
    const group = GROUPS.find(([, test]) => test(name))![0];
    grouped.set(group, [...(grouped.get(group) ?? []), name]);
  }
  return (
    <aside className="library" aria-label="Action library">
      <input className="search" placeholder="Search actions" value={filter} onChange={(e) => setFilter(e.target.value)} />
      {GROUPS.map(([group]) =>
        grouped.has(group) ? (
          <div key={group} className="library-group">
            <h3>{group}</h3>
            {grouped.get(group)!.map((name) => (
              <button
                key={name}
                className="library-item"
                draggable={!readOnly}
                disabled={readOnly}
                onDragStart={(e) => e.dataTransfer.setData('application/x-alertflow-action', name)}
                onClick={() => onAdd(name)}
                title={`Add ${name}`}
              >
                {name}
              </button>
            ))}
          </div>
        ) : null,
      )}
      {actions.length === 0 && <p className="muted">No action matches.</p>}
    </aside>
  );
}
