// Unsaved work in the builder lives in sessionStorage, per workflow: a lost session, a reload
// or a trip to another page does not lose the graph.
import type { WorkflowDoc } from '../api';

export interface Position {
  x: number;
  y: number;
}

export interface Draft {
  doc: WorkflowDoc;
  positions: Record<string, Position>;
  /** The version this draft started from; null for a workflow never saved. */
  baseVersion: number | null;
}

const key = (id: string) => `alertflow:draft:${id}`;

export function loadDraft(id: string): Draft | null {
  const text = sessionStorage.getItem(key(id));
  if (!text) return null;
  try {
    return JSON.parse(text) as Draft;
  } catch {
    return null;
  }
}

export function saveDraft(id: string, draft: Draft) {
  sessionStorage.setItem(key(id), JSON.stringify(draft));
}

export function clearDraft(id: string) {
  sessionStorage.removeItem(key(id));
}

export function newDraft(name: string, trigger: string): Draft {
  return { doc: { name, trigger: { type: trigger }, steps: [] }, positions: {}, baseVersion: null };
}
