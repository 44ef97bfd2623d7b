// A text field that can hold templates: its { } button lists the names in scope and inserts
// the one clicked as {{ name }} where the cursor is.
import { useRef, useState } from 'react';

export function TemplateInput({
  value,
  onChange,
  names,
  name,
  multiline,
  placeholder,
  readOnly,
}: {
  value: string;
  onChange: (v: string) => void;
  names: string[];
  name: string;
  multiline?: boolean;
  placeholder?: string;
  readOnly?: boolean;
}) {
  const ref = useRef<HTMLInputElement & HTMLTextAreaElement>(null);
  const [open, setOpen] = useState(false);
  const [filter, setFilter] = useState('');
  const insert = (n: string) => {
    const el = ref.current;
    const at = el?.selectionStart ?? value.length;
    const end = el?.selectionEnd ?? at;
    onChange(`${value.slice(0, at)}{{ ${n} }}${value.slice(end)}`);
    setOpen(false);
    setFilter('');
  };
  const shown = names.filter((n) => n.toLowerCase().includes(filter.toLowerCase()));
  const props = {
    ref,
    name,
    value,
    placeholder,
    readOnly,
    onChange: (e: { target: { value: string } }) => onChange(e.target.value),
  };
  return (
    <div className="template-input">
      <div className="row">
        {multiline ? <textarea rows={3} {...props} /> : <input {...props} />}
        {!readOnly && (
          <button type="button" className="small" aria-label={`Insert a name into ${name}`} onClick={() => setOpen(!open)}>
            {'{ }'}
          </button>
        )}
      </div>
      {open && (
        <div className="suggestions" role="listbox" aria-label="Template names">
          <input placeholder="Filter names" value={filter} onChange={(e) => setFilter(e.target.value)} autoFocus />
          <ul>
            {shown.map((n) => (
              <li key={n}>
                <button type="button" role="option" aria-selected="false" onClick={() => insert(n)}>
                  {n}
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}
