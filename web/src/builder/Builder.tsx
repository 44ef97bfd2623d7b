// The workflow builder: action library, graph, the selected node's settings, and the code
// view of the same YAML document. Unsaved work is kept in sessionStorage (see draft.ts).
import { useEffect, useMemo, useState } from 'react';
import { ReactFlowProvider } from '@xyflow/react';
import YAML from 'yaml';
import { api, ApiError, type DocumentSchema, type Execution, type FieldError, type Step, type WorkflowDoc, type WorkflowSummary } from '../api';
import { Link, navigate } from '../router';
import { canEdit, useSession } from '../session';
import { ErrorText } from '../ui';
import { Canvas } from './Canvas';
import { clearDraft, loadDraft, saveDraft, type Draft, type Position } from './draft';
import { Library } from './Library';
import { exportDoc, freshId, missing, normalize, renameStep, stepOfPath, TRIGGER_ID } from './model';
import { StepPanel } from './StepPanel';
import { templateNames } from './suggestions';
import { TriggerPanel } from './TriggerPanel';

const same = (a: WorkflowDoc | null, b: WorkflowDoc | null) =>
  !!a && !!b && JSON.stringify(exportDoc(a)) === JSON.stringify(exportDoc(b));

export function Builder({ id }: { id: string }) {
  const session = useSession();
  const readOnly = !canEdit(session);
  const [draft, setDraft] = useState<Draft | null>(null);
  const [saved, setSaved] = useState<{ doc: WorkflowDoc; source: string; version: number } | null>(null);
  const [loadError, setLoadError] = useState<string>();
  const [restored, setRestored] = useState(false);
  const [schema, setSchema] = useState<DocumentSchema | null>(null);
  const [recorded, setRecorded] = useState<Execution | null>(null);
  const [secrets, setSecrets] = useState<string[]>([]);
  const [selected, setSelected] = useState<string | null>(TRIGGER_ID);
  const [mode, setMode] = useState<'graph' | 'code'>('graph');
  const [code, setCode] = useState('');
  const [codeError, setCodeError] = useState<string>();
  const [saveErrors, setSaveErrors] = useState<FieldError[]>([]);
  const [message, setMessage] = useState<string>();
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    api<DocumentSchema>('GET', '/schema').then(setSchema).catch(() => undefined);
    api<{ name: string }[]>('GET', '/secrets').then((s) => setSecrets(s.map((x) => x.name))).catch(() => undefined);
    api<Execution[]>('GET', `/executions?workflow=${encodeURIComponent(id)}&limit=1`)
      .then((e) => setRecorded(e[0] ?? null))
      .catch(() => undefined);
    const kept = loadDraft(id);
    api<WorkflowSummary>('GET', `/workflows/${encodeURIComponent(id)}`)
      .then((w) => {
        const doc = normalize(w.document!);
        setSaved({ doc, source: w.source ?? '', version: w.version });
        if (kept && !same(normalize(kept.doc), doc)) {
          setDraft({ ...kept, doc: normalize(kept.doc) });
          setRestored(true);
        } else {
          setDraft({ doc, positions: kept?.positions ?? {}, baseVersion: w.version });
        }
      })
      .catch((e: ApiError) => {
        if (e.status === 404 && kept) setDraft({ ...kept, doc: normalize(kept.doc) });
        else setLoadError(e.status === 404 ? `No workflow ${id}.` : e.message);
      });
  }, [id]);

  const update = (change: (d: Draft) => Draft) =>
    setDraft((d) => {
      if (!d) return d;
      const next = change(d);
      saveDraft(id, next);
      return next;
    });
  const setDoc = (f: (doc: WorkflowDoc) => WorkflowDoc) => update((d) => ({ ...d, doc: f(d.doc) }));

  const doc = draft?.doc ?? null;
  const dirty = !!doc && !same(doc, saved?.doc ?? null);

  // What blocks saving (unconfigured nodes), and what the last save attempt said, per node.
  const problems = useMemo(() => {
    const out: Record<string, string> = {};
    if (!doc) return out;
    for (const s of doc.steps) {
      const m = missing(s, schema);
      if (m.length) out[s.id] = `needs: ${m.join(', ')}`;
    }
    for (const e of saveErrors) {
      const at = stepOfPath(doc, e.path);
      const node = at ? at.step : e.path.startsWith('trigger') || e.path === 'name' ? TRIGGER_ID : null;
      if (node && !out[node]) out[node] = `${e.path}: ${e.message}`;
    }
    return out;
  }, [doc, schema, saveErrors]);

  if (loadError) return <ErrorText text={loadError} />;
  if (!draft || !doc) return <p className="loading">Loading…</p>;

  const unconfigured = doc.steps.filter((s) => missing(s, schema).length > 0).map((s) => s.id);
  const blocked = readOnly
    ? 'Viewers cannot save.'
    : doc.steps.length === 0
      ? 'Add a step from the library to save.'
      : unconfigured.length
        ? `Configure ${unconfigured.join(', ')} first.`
        : codeError
          ? 'Fix the YAML first.'
          : undefined;

  const errorsFor = (node: string): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const e of saveErrors) {
      if (node === TRIGGER_ID && !e.path.startsWith('steps')) out[e.path] = e.message;
      const at = stepOfPath(doc, e.path);
      if (at && at.step === node) out[at.rest] = e.message;
    }
    return out;
  };

  const addStep = (uses: string, at?: Position) => {
    const newId = freshId(doc, uses);
    const after = selected && selected !== TRIGGER_ID && doc.steps.some((s) => s.id === selected) ? selected : doc.steps.at(-1)?.id;
    update((d) => ({
      ...d,
      doc: { ...d.doc, steps: [...d.doc.steps, { id: newId, uses, with: {}, needs: after ? [after] : [] }] },
      positions: at ? { ...d.positions, [newId]: at } : d.positions,
    }));
    setSelected(newId);
  };

  const connect = (source: string, target: string) =>
    setDoc((d) => ({
      ...d,
      steps: d.steps.map((s) => {
        if (s.id !== target) return s;
        if (source === TRIGGER_ID) return { ...s, needs: [] };
        return { ...s, needs: [...new Set([...(s.needs ?? []), source])] };
      }),
    }));

  const disconnect = (source: string, target: string) =>
    setDoc((d) => ({
      ...d,
      steps: d.steps.map((s) => (s.id === target ? { ...s, needs: (s.needs ?? []).filter((n) => n !== source) } : s)),
    }));

  const removeStep = (sid: string) => {
    setDoc((d) => ({
      ...d,
      steps: d.steps.filter((s) => s.id !== sid).map((s) => ({ ...s, needs: (s.needs ?? []).filter((n) => n !== sid) })),
    }));
    setSelected(TRIGGER_ID);
  };

  const toggleCode = () => {
    if (mode === 'graph') {
      // Untouched, the code view shows the document as it was applied, comments and all.
      setCode(!dirty && saved ? saved.source : YAML.stringify(exportDoc(doc)));
      setCodeError(undefined);
      setMode('code');
    } else if (!codeError) {
      setMode('graph');
    }
  };

  const editCode = (text: string) => {
    setCode(text);
    try {
      const parsed = YAML.parse(text) as WorkflowDoc;
      if (!parsed || typeof parsed !== 'object' || !parsed.trigger) throw new Error('a workflow needs name, trigger and steps');
      setCodeError(undefined);
      setDoc(() => normalize({ ...parsed, steps: parsed.steps ?? [] }));
    } catch (e) {
      setCodeError((e as Error).message.split('\n')[0]);
    }
  };

  const save = async () => {
    setSaving(true);
    setMessage(undefined);
    setSaveErrors([]);
    const text = mode === 'code' ? code : YAML.stringify(exportDoc(doc));
    try {
      const r = await api<{ version: number; unchanged: boolean }>('POST', '/workflows', text);
      const w = await api<WorkflowSummary>('GET', `/workflows/${encodeURIComponent(doc.name)}`);
      const fresh = normalize(w.document!);
      setSaved({ doc: fresh, source: w.source ?? '', version: w.version });
      clearDraft(id);
      setRestored(false);
      update((d) => ({ ...d, doc: fresh, baseVersion: w.version }));
      clearDraft(id);
      setMessage(r.unchanged ? `No changes: still version ${r.version}.` : `Saved version ${r.version}.`);
      if (doc.name !== id) navigate(`/workflows/${encodeURIComponent(doc.name)}`);
    } catch (e) {
      const err = e as ApiError;
      if (err.errors?.length) setSaveErrors(err.errors);
      setMessage(`Not saved: ${err.message}`);
    } finally {
      setSaving(false);
    }
  };

  const run = async () => {
    try {
      const r = await api<{ executions: string[] }>('POST', `/workflows/${encodeURIComponent(id)}/run`, {});
      navigate(`/executions/${r.executions[0]}`);
    } catch (e) {
      setMessage(`Not started: ${(e as Error).message}`);
    }
  };

  const step = doc.steps.find((s) => s.id === selected) ?? null;
  const names = templateNames(doc, step?.id ?? null, schema, recorded, secrets);

  return (
    <div className="builder">
      <div className="toolbar">
        <Link to="/workflows">Workflows</Link> / <b>{doc.name}</b>{' '}
        <span className="muted">{saved ? `version ${saved.version}` : 'new, not saved'}</span>
        {dirty && <span className="badge status-waiting">unsaved changes</span>}
        <span className="spacer" />
        {restored && (
          <span className="notice small-text">
            Unsaved changes restored.{' '}
            <button
              className="small"
              onClick={() => {
                clearDraft(id);
                setRestored(false);
                if (saved) setDraft({ doc: saved.doc, positions: draft.positions, baseVersion: saved.version });
              }}
            >
              Discard
            </button>
          </span>
        )}
        <button onClick={toggleCode} aria-pressed={mode === 'code'}>
          {mode === 'code' ? 'Graph' : 'Code'}
        </button>
        {saved && doc.trigger.type !== 'schedule' && !readOnly && <button onClick={run}>Run</button>}
        <button className="primary" onClick={save} disabled={!!blocked || saving} title={blocked}>
          Save
        </button>
      </div>
      {(blocked || message || saveErrors.length > 0) && (
        <div className="save-status" role="status">
          {message && <p className={saveErrors.length || message.startsWith('Not') ? 'error' : 'ok'}>{message}</p>}
          {saveErrors.length > 0 && (
            <ul className="error-list">
              {saveErrors.map((e) => (
                <li key={e.path + e.message}>
                  <code>{e.path}</code>: {e.message}
                </li>
              ))}
            </ul>
          )}
          {blocked && <p className="muted">{blocked}</p>}
        </div>
      )}
      {mode === 'code' ? (
        <div className="code-view">
          <textarea aria-label="Workflow YAML" className="code" value={code} readOnly={readOnly} onChange={(e) => editCode(e.target.value)} spellCheck={false} />
          {codeError && <p className="error">YAML: {codeError}</p>}
        </div>
      ) : (
        <div className="builder-body">
          <Library schema={schema} onAdd={(u) => addStep(u)} readOnly={readOnly} />
          <ReactFlowProvider>
            <Canvas
              doc={doc}
              positions={draft.positions}
              problems={problems}
              selected={selected}
              onSelect={setSelected}
              onMove={(nid, p) => update((d) => ({ ...d, positions: { ...d.positions, [nid]: p } }))}
              onConnect={connect}
              onRemoveEdge={disconnect}
              onRemoveStep={removeStep}
              onDropAction={(u, at) => addStep(u, at)}
              readOnly={readOnly}
            />
          </ReactFlowProvider>
          <div className="side">
            {step ? (
              <StepPanel
                key={step.id}
                step={step}
                schema={schema}
                names={names}
                errors={errorsFor(step.id)}
                readOnly={readOnly}
                onChange={(s: Step) => setDoc((d) => ({ ...d, steps: d.steps.map((x) => (x.id === step.id ? s : x)) }))}
                onRename={(to) => {
                  setDoc((d) => renameStep(d, step.id, to));
                  update((d) => ({ ...d, positions: { ...d.positions, [to]: d.positions[step.id] } }));
                  setSelected(to);
                }}
                onDelete={() => removeStep(step.id)}
              />
            ) : (
              <TriggerPanel
                doc={doc}
                isNew={!saved}
                names={names}
                errors={errorsFor(TRIGGER_ID)}
                readOnly={readOnly}
                onChange={(d) => setDoc(() => d)}
              />
            )}
          </div>
        </div>
      )}
    </div>
  );
}
