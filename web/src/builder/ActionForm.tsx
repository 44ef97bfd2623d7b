// A step's `with`, as a form made from its action's input schema: a select for a choice, a
// template field for text, a checkbox for yes/no, YAML for lists and structures.
import { useEffect, useState } from 'react';
import YAML from 'yaml';
import type { JsonSchema } from '../api';
import { Field } from '../ui';
import { TemplateInput } from './TemplateInput';

function kinds(s: JsonSchema): string[] {
  if (!s.type) return [];
  return Array.isArray(s.type) ? s.type : [s.type];
}

type Widget = 'select' | 'text' | 'number' | 'boolean' | 'yaml';

function widgetFor(s: JsonSchema): Widget {
  if (s.enum) return 'select';
  const k = kinds(s).filter((t) => t !== 'null');
  if (k.length === 1 && k[0] === 'string') return 'text';
  if (k.length === 1 && (k[0] === 'integer' || k[0] === 'number')) return 'number';
  if (k.length === 1 && k[0] === 'boolean') return 'boolean';
  if (k.length === 0 && s.format) return 'text';
  return 'yaml';
}

export function ActionForm({
  schema,
  value,
  onChange,
  names,
  errors,
  readOnly,
}: {
  schema: JsonSchema;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
  names: string[];
  errors: Record<string, string>;
  readOnly: boolean;
}) {
  const required = new Set(schema.required ?? []);
  const set = (key: string, v: unknown) => {
    const next = { ...value };
    if (v === undefined || v === '') delete next[key];
    else next[key] = v;
    onChange(next);
  };
  const props = Object.entries(schema.properties ?? {});
  return (
    <div className="action-form">
      {props.map(([key, s]) => (
        <Field
          key={key}
          name={key}
          label={`${key}${required.has(key) ? ' *' : ''}`}
          hint={s.description}
          error={errors[key] ?? (required.has(key) && (value[key] === undefined || value[key] === '') ? 'required' : undefined)}
        >
          <Input widget={widgetFor(s)} schema={s} name={key} value={value[key]} set={(v) => set(key, v)} names={names} readOnly={readOnly} />
        </Field>
      ))}
      {props.length === 0 && <p className="muted">This action takes no inputs.</p>}
    </div>
  );
}

function Input({
  widget,
  schema,
  name,
  value,
  set,
  names,
  readOnly,
}: {
  widget: Widget;
  schema: JsonSchema;
  name: string;
  value: unknown;
  set: (v: unknown) => void;
  names: string[];
  readOnly: boolean;
}) {
  switch (widget) {
    case 'select':
      return (
        <select name={name} value={value === undefined ? '' : String(value)} disabled={readOnly} onChange={(e) => set(e.target.value || undefined)}>
          <option value="">(default)</option>
          {schema.enum!.map((o) => (
            <option key={String(o)} value={String(o)}>
              {String(o)}
            </option>
          ))}
        </select>
      );
    case 'boolean':
      return (
        <input
          type="checkbox"
          name={name}
          checked={value === true}
          disabled={readOnly}
          onChange={(e) => set(e.target.checked ? true : undefined)}
        />
      );
    case 'number':
      // Text, so that a template can stand in for the number.
      return (
        <TemplateInput
          name={name}
          value={value === undefined ? '' : String(value)}
          names={names}
          readOnly={readOnly}
          onChange={(v) => set(/^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v)}
        />
      );
    case 'text':
      return (
        <TemplateInput
          name={name}
          value={value === undefined ? '' : String(value)}
          names={names}
          readOnly={readOnly}
          multiline={name === 'text' || name === 'message' || name === 'body' || name === 'jq'}
          onChange={(v) => set(v)}
        />
      );
    default:
      return <YamlInput name={name} value={value} set={set} readOnly={readOnly} />;
  }
}

/** Any structure, edited as YAML; applied when it parses. */
function YamlInput({ name, value, set, readOnly }: { name: string; value: unknown; set: (v: unknown) => void; readOnly: boolean }) {
  const show = (v: unknown) => (v === undefined ? '' : YAML.stringify(v).trimEnd());
  const [text, setText] = useState(show(value));
  const [error, setError] = useState<string>();
  useEffect(() => {
    setText((t) => {
      try {
        if (JSON.stringify(YAML.parse(t)) === JSON.stringify(value)) return t;
      } catch {
        /* replaced below */
      }
      return show(value);
    });
  }, [value]);
  return (
    <>
      <textarea
        name={name}
        rows={Math.min(8, Math.max(2, text.split('\n').length))}
        className="code"
        value={text}
        readOnly={readOnly}
        onChange={(e) => {
          setText(e.target.value);
          try {
            const parsed = e.target.value.trim() === '' ? undefined : YAML.parse(e.target.value);
            setError(undefined);
            set(parsed ?? undefined);
          } catch (err) {
            setError((err as Error).message.split('\n')[0]);
          }
        }}
      />
      {error && <span className="field-error">YAML: {error}</span>}
    </>
  );
}
