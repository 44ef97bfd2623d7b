// Small shared pieces: fields that show the server's error, confirm dialogs, copy buttons,
// and time formatting to the millisecond.
import { useState, type ReactNode } from 'react';
import { ApiError } from './api';

/** A labelled control with its hint and, under it, the error the server gave for it. */
export function Field({
  label,
  error,
  hint,
  children,
  name,
}: {
  label: string;
  error?: string;
  hint?: string;
  children: ReactNode;
  name?: string;
}) {
  return (
    <label className={`field${error ? ' has-error' : ''}`} data-field={name}>
      <span className="field-label">{label}</span>
      {children}
      {hint && <span className="field-hint">{hint}</span>}
      {error && (
        <span className="field-error" role="alert">
          {error}
        </span>
      )}
    </label>
  );
}

/** What a failed request says, for forms: per field when the server named one, else overall. */
export function useFormErrors() {
  const [err, setErr] = useState<ApiError | Error | null>(null);
  return {
    set: setErr,
    clear: () => setErr(null),
    field: (path: string) => (err instanceof ApiError ? err.field(path) : undefined),
    /** The message when no field was named. */
    general: err && !(err instanceof ApiError && err.errors.length > 0) ? err.message : undefined,
  };
}

export function ErrorText({ text }: { text?: string }) {
  return text ? (
    <p className="error" role="alert">
      {text}
    </p>
  ) : null;
}

/** A modal that asks before something is done that cannot be undone. */
export function Confirm({
  message,
  confirmLabel = 'Delete',
  onConfirm,
  onCancel,
}: {
  message: ReactNode;
  confirmLabel?: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  return (
    <div className="modal-backdrop">
      <div className="modal" role="dialog" aria-modal="true">
        <p>{message}</p>
        <div className="row end">
          <button onClick={onCancel}>Cancel</button>
          <button className="danger" onClick={onConfirm}>
            {confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}

export async function copyText(text: string) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context (plain http on a non-local address): the old way.
    const area = document.createElement('textarea');
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      className="small"
      onClick={async () => {
        await copyText(text);
        setDone(true);
        setTimeout(() => setDone(false), 1500);
      }}
    >
      {done ? 'Copied' : label}
    </button>
  );
}

/** `2024-05-01 12:00:00.123` in local time: steps are compared to the millisecond. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(
    d.getMinutes(),
  )}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function formatDuration(from: string | null | undefined, to: string | null | undefined): string {
  if (!from || !to) return '';
  const ms = new Date(to).getTime() - new Date(from).getTime();
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m}m ${Math.round((ms % 60_000) / 1000)}s`;
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge status-${status}`}>{status}</span>;
}

export function Json({ value }: { value: unknown }) {
  return <pre className="json">{value === undefined ? '' : JSON.stringify(value, null, 2)}</pre>;
}
