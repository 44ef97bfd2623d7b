// The right panel for a selected step: its id, condition, retries and timeout, and the
// action's own inputs.
import { useEffect, useState } from 'react';
import type { DocumentSchema, Step } from '../api';
import { Field } from '../ui';
import { ActionForm } from './ActionForm';
import { TemplateInput } from './TemplateInput';

const STEP_ID = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function StepPanel({
  step,
  schema,
  names,
  errors,
  readOnly,
  onChange,
  onRename,
  onDelete,
}: {
  step: Step;
  schema: DocumentSchema | null;
  names: string[];
  /** Server errors for this step, by the path after `steps[i].` */
  errors: Record<string, string>;
  readOnly: boolean;
  onChange: (s: Step) => void;
  onRename: (to: string) => void;
  onDelete: () => void;
}) {
  const [id, setId] = useState(step.id);
  useEffect(() => setId(step.id), [step.id]);
  const action = schema?.['x-actions'][step.uses];
  const withErrors: Record<string, string> = {};
  for (const [path, msg] of Object.entries(errors)) {
    if (path.startsWith('with.')) withErrors[path.slice(5).split(/[.[]/)[0]] = msg;
  }
  const set = (key: keyof Step, v: unknown) => {
    const next = { ...step, [key]: v === '' ? undefined : v };
    onChange(next);
  };
  const idError = id !== step.id && !STEP_ID.test(id) ? 'letters, digits and _, not starting with a digit' : errors.id;
  return (
    <div className="panel" data-testid="step-panel">
      <h2>
        {step.uses} <span className="muted">step</span>
      </h2>
      <Field label="Step id" error={idError} hint="Templates read its output as steps.ID.output.">
        <input
          name="step-id"
          value={id}
          readOnly={readOnly}
          onChange={(e) => setId(e.target.value)}
          onBlur={() => STEP_ID.test(id) && id !== step.id && onRename(id)}
        />
      </Field>
      {action ? (
        <ActionForm
          schema={action.inputs}
          value={(step.with ?? {}) as Record<string, unknown>}
          onChange={(w) => set('with', w)}
          names={names}
          errors={withErrors}
          readOnly={readOnly}
        />
      ) : (
        <p className="error">No action named {step.uses} on this server.</p>
      )}
      {errors.with && <p className="field-error">{errors.with}</p>}
      <details className="step-options">
        <summary>Condition, retries, timeout</summary>
        <Field label="if" hint="A Jinja expression; false skips the step." error={errors.if}>
          <TemplateInput name="if" value={step.if ?? ''} names={names} readOnly={readOnly} onChange={(v) => set('if', v)} />
        </Field>
        <Field label="timeout" hint="All attempts together, e.g. 30s (default 10m)." error={errors.timeout}>
          <input name="timeout" value={step.timeout ?? ''} readOnly={readOnly} onChange={(e) => set('timeout', e.target.value)} />
        </Field>
        <Field label="retry attempts" error={errors['retry.attempts'] ?? errors.retry}>
          <input
            name="retry-attempts"
            type="number"
            min={1}
            value={step.retry?.attempts ?? ''}
            readOnly={readOnly}
            onChange={(e) =>
              set('retry', e.target.value ? { ...step.retry, attempts: Number(e.target.value) } : undefined)
            }
          />
        </Field>
        <Field label="on_error" error={errors.on_error}>
          <select name="on_error" value={step.on_error ?? ''} disabled={readOnly} onChange={(e) => set('on_error', e.target.value)}>
            <option value="">fail (default)</option>
            <option value="continue">continue</option>
          </select>
        </Field>
      </details>
      {!readOnly && (
        <button className="danger" onClick={onDelete}>
          Delete step
        </button>
      )}
    </div>
  );
}
