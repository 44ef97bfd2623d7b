// The workflow document and the graph the builder draws of it. Inside the builder every step
// carries its `needs` explicitly (an edge from the trigger is `needs: []`); the document that is
// saved leaves out the `needs` that the language implies (a step follows the one before it).
import type { DocumentSchema, Step, WorkflowDoc } from '../api';
import type { Position } from './draft';

export const TRIGGER_ID = '__trigger__';

/** Every step with explicit `needs`. */
export function normalize(doc: WorkflowDoc): WorkflowDoc {
  const steps = (doc.steps ?? []).map((s, i, all) => ({
    ...s,
    needs: s.needs ?? (i === 0 ? [] : [all[i - 1].id]),
  }));
  return { ...doc, trigger: { ...(doc.trigger ?? { type: 'manual' }) }, steps };
}

/** The document to save: steps in an order where each comes after what it needs, implied
 * `needs` left out, empty settings dropped. */
export function exportDoc(doc: WorkflowDoc): WorkflowDoc {
  const byId = new Map(doc.steps.map((s) => [s.id, s]));
  const placed = new Set<string>();
  const ordered: Step[] = [];
  const visit = (s: Step, seen: Set<string>) => {
    if (placed.has(s.id) || seen.has(s.id)) return;
    seen.add(s.id);
    for (const n of s.needs ?? []) {
      const dep = byId.get(n);
      if (dep) visit(dep, seen);
    }
    placed.add(s.id);
    ordered.push(s);
  };
  doc.steps.forEach((s) => visit(s, new Set()));
  const steps = ordered.map((s, i) => {
    const out: Step = { ...s };
    const implied = i === 0 ? [] : [ordered[i - 1].id];
    if (sameList(out.needs ?? [], implied)) delete out.needs;
    if (out.with && Object.keys(out.with).length === 0) delete out.with;
    for (const k of Object.keys(out)) if (out[k] === undefined || out[k] === '') delete out[k];
    return out;
  });
  const out: WorkflowDoc = { ...doc, steps };
  if (!out.description) delete out.description;
  if (!out.timeout) delete out.timeout;
  const trigger = { ...doc.trigger };
  for (const k of Object.keys(trigger)) {
    const v = trigger[k];
    if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) delete trigger[k];
  }
  out.trigger = trigger;
  return out;
}

function sameList(a: string[], b: string[]) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
}

export function edgesOf(doc: WorkflowDoc): GraphEdge[] {
  const edges: GraphEdge[] = [];
  for (const s of doc.steps) {
    const needs = s.needs ?? [];
    if (needs.length === 0) edges.push({ id: `${TRIGGER_ID}->${s.id}`, source: TRIGGER_ID, target: s.id });
    for (const n of needs) edges.push({ id: `${n}->${s.id}`, source: n, target: s.id });
  }
  return edges;
}

/** Positions for nodes that have none: rows by depth in the graph, side by side within a row. */
export function layout(doc: WorkflowDoc, known: Record<string, Position>): Record<string, Position> {
  const depth = new Map<string, number>();
  const byId = new Map(doc.steps.map((s) => [s.id, s]));
  const depthOf = (id: string, guard: Set<string>): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (guard.has(id)) return 1;
    guard.add(id);
    const needs = byId.get(id)?.needs ?? [];
    const d = needs.length === 0 ? 1 : 1 + Math.max(...needs.map((n) => (byId.has(n) ? depthOf(n, guard) : 0)));
    depth.set(id, d);
    return d;
  };
  const rows = new Map<number, string[]>();
  for (const s of doc.steps) {
    const d = depthOf(s.id, new Set());
    rows.set(d, [...(rows.get(d) ?? []), s.id]);
  }
  const out: Record<string, Position> = { [TRIGGER_ID]: known[TRIGGER_ID] ?? { x: 0, y: 0 } };
  for (const [d, ids] of rows) {
    ids.forEach((id, i) => {
      out[id] = known[id] ?? { x: (i - (ids.length - 1) / 2) * 260, y: d * 130 };
    });
  }
  return out;
}

/** A step id not taken yet, from the action's name: `http.request` gives `http_request_1`. */
export function freshId(doc: WorkflowDoc, uses: string): string {
  const base = uses.replace(/[^A-Za-z0-9_]/g, '_');
  for (let i = 1; ; i++) {
    const id = `${base}_${i}`;
    if (!doc.steps.some((s) => s.id === id)) return id;
  }
}

/** What a step still needs before it can be saved: its required inputs, or a known action. */
export function missing(step: Step, schema: DocumentSchema | null): string[] {
  if (!schema) return [];
  const action = schema['x-actions'][step.uses];
  if (!action) return [`uses: no action named ${step.uses}`];
  const required = action.inputs.required ?? [];
  return required.filter((k) => {
    const v = step.with?.[k];
    return v === undefined || v === null || v === '';
  });
}

/** Steps that run before `id` (what it needs, and what those need): the steps its templates
 * can read. */
export function upstream(doc: WorkflowDoc, id: string): string[] {
  const byId = new Map(doc.steps.map((s) => [s.id, s]));
  const seen = new Set<string>();
  const walk = (sid: string) => {
    for (const n of byId.get(sid)?.needs ?? []) {
      if (!seen.has(n) && byId.has(n)) {
        seen.add(n);
        walk(n);
      }
    }
  };
  walk(id);
  return doc.steps.map((s) => s.id).filter((s) => seen.has(s));
}

/** Renames a step and the `needs` that name it. */
export function renameStep(doc: WorkflowDoc, from: string, to: string): WorkflowDoc {
  return {
    ...doc,
    steps: doc.steps.map((s) => ({
      ...s,
      id: s.id === from ? to : s.id,
      needs: (s.needs ?? []).map((n) => (n === from ? to : n)),
    })),
  };
}

/** The step a validation path like `steps[2].with.url` is about, and the rest of the path. */
export function stepOfPath(doc: WorkflowDoc, path: string): { step: string; rest: string } | null {
  const m = /^steps\[(\d+)\]\.?(.*)$/.exec(path);
  if (!m) return null;
  const exported = exportDoc(doc);
  const step = exported.steps[Number(m[1])];
  return step ? { step: step.id, rest: m[2] } : null;
}
