// The trigger's panel. For a webhook trigger (Prometheus or generic): pick the API key, then
// read its value (masked; show, copy), the Workflow Webhook URL and, for Prometheus, the
// Alertmanager receiver block with both filled in.
import { useEffect, useState } from 'react';
import { api, type Key, type Trigger, type WorkflowDoc } from '../api';
import { Link } from '../router';
import { canEdit, useSession } from '../session';
import { CopyButton, Field } from '../ui';
import { TemplateInput } from './TemplateInput';

export function receiverBlock(url: string, key: string): string {
  return `receivers:
- name: 'alertflow'
  webhook_configs:
  - send_resolved: true
    url: '${url}?x-api-key=${key}'
    max_alerts: 0
`;
}

export function TriggerPanel({
  doc,
  isNew,
  names,
  errors,
  readOnly,
  onChange,
}: {
  doc: WorkflowDoc;
  isNew: boolean;
  names: string[];
  errors: Record<string, string>;
  readOnly: boolean;
  onChange: (doc: WorkflowDoc) => void;
}) {
  const session = useSession();
  const trigger = doc.trigger;
  const setTrigger = (t: Partial<Trigger>) => onChange({ ...doc, trigger: { ...trigger, ...t } });
  const hooked = trigger.type === 'prometheus' || trigger.type === 'webhook';
  const [keys, setKeys] = useState<Key[]>([]);
  const [value, setValue] = useState<string | null>(null);
  const [shown, setShown] = useState(false);
  const keyName = trigger.api_keys?.[0] ?? '';

  useEffect(() => {
    if (hooked) api<Key[]>('GET', '/keys').then(setKeys).catch(() => setKeys([]));
  }, [hooked]);
  useEffect(() => {
    setValue(null);
    setShown(false);
    // Key values are for editors; a viewer sees the name only.
    if (keyName && canEdit(session)) {
      api<Key>('GET', `/keys/${encodeURIComponent(keyName)}/value`)
        .then((k) => setValue(k.value ?? null))
        .catch(() => setValue(null));
    }
  }, [keyName, session]);

  const url = `${session.public_url}/hooks/${doc.name}`;
  return (
    <div className="panel" data-testid="trigger-panel">
      <h2>
        Trigger <span className="muted">{trigger.type}</span>
      </h2>
      <Field label="Workflow name" error={errors.name} hint={isNew ? 'Part of the webhook URL; fixed once saved.' : undefined}>
        <input name="workflow-name" value={doc.name} readOnly />
      </Field>
      <Field label="Description" error={errors.description}>
        <input name="description" value={doc.description ?? ''} readOnly={readOnly} onChange={(e) => onChange({ ...doc, description: e.target.value })} />
      </Field>
      {hooked && (
        <>
          <Field label="Webhook API Key Name" error={errors['trigger.api_keys'] ?? errors['trigger.api_keys[0]']}>
            <select
              name="api-key"
              value={keyName}
              disabled={readOnly}
              onChange={(e) => setTrigger({ api_keys: e.target.value ? [e.target.value] : undefined })}
            >
              <option value="">(any key)</option>
              {keys.map((k) => (
                <option key={k.name}>{k.name}</option>
              ))}
              {keyName && !keys.some((k) => k.name === keyName) && <option>{keyName}</option>}
            </select>
          </Field>
          {keys.length === 0 && (
            <p className="muted">
              No API keys yet: <Link to="/settings/keys">create one</Link>.
            </p>
          )}
          {keyName && (
            <Field label="Webhook API Key Value">
              <div className="row">
                <code className="secret" data-testid="key-value">
                  {value === null ? '(editors only)' : shown ? value : '•'.repeat(24)}
                </code>
                {value !== null && (
                  <>
                    <button type="button" className="small" onClick={() => setShown(!shown)}>
                      {shown ? 'Hide' : 'Show'}
                    </button>
                    <CopyButton text={value} />
                  </>
                )}
              </div>
            </Field>
          )}
          <Field label="Workflow Webhook URL">
            <div className="row">
              <code data-testid="webhook-url">{url}</code>
              <CopyButton text={url} />
            </div>
          </Field>
          {trigger.type === 'prometheus' && (
            <Field label="Alertmanager receiver" hint="Paste into alertmanager.yml and route alerts to it.">
              <pre className="code" data-testid="receiver-block">
                {receiverBlock(url, shown && value ? value : keyName && value ? '•'.repeat(8) : 'API_KEY')}
              </pre>
              <CopyButton text={receiverBlock(url, value ?? 'API_KEY')} label="Copy receiver" />
            </Field>
          )}
        </>
      )}
      {trigger.type === 'prometheus' && (
        <>
          <Field label="split" error={errors['trigger.split']} hint="One run per notification, or one per alert (alert.* in templates).">
            <select name="split" value={trigger.split ?? ''} disabled={readOnly} onChange={(e) => setTrigger({ split: e.target.value || undefined })}>
              <option value="">per_notification (default)</option>
              <option value="per_alert">per_alert</option>
            </select>
          </Field>
          <Field label="when" error={errors['trigger.when']} hint="A Jinja expression; false records the delivery as filtered.">
            <TemplateInput name="when" value={trigger.when ?? ''} names={names} readOnly={readOnly} onChange={(v) => setTrigger({ when: v || undefined })} />
          </Field>
          <Field label="dedupe_window" error={errors['trigger.dedupe_window']} hint="Default 10m.">
            <input name="dedupe_window" value={trigger.dedupe_window ?? ''} readOnly={readOnly} onChange={(e) => setTrigger({ dedupe_window: e.target.value || undefined })} />
          </Field>
        </>
      )}
      {trigger.type === 'schedule' && (
        <>
          <Field label="cron" error={errors['trigger.cron'] ?? errors.trigger} hint="minute hour day-of-month month day-of-week">
            <input name="cron" value={trigger.cron ?? ''} readOnly={readOnly} onChange={(e) => setTrigger({ cron: e.target.value || undefined })} />
          </Field>
          <Field label="timezone" error={errors['trigger.timezone']} hint="IANA name, default UTC.">
            <input name="timezone" value={trigger.timezone ?? ''} readOnly={readOnly} onChange={(e) => setTrigger({ timezone: e.target.value || undefined })} />
          </Field>
          <Field label="every" error={errors['trigger.every']} hint="Instead of cron: 15m, 1h…">
            <input name="every" value={trigger.every ?? ''} readOnly={readOnly} onChange={(e) => setTrigger({ every: e.target.value || undefined })} />
          </Field>
        </>
      )}
      {trigger.type === 'manual' && <p className="muted">Runs when started by hand: the Run button, or alertflow run.</p>}
    </div>
  );
}
