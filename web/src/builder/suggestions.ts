// The names a step's templates can use, for the suggestions of template fields. Label and
// output names come from the latest recorded execution where there is one, else from the
// actions' schemas and the labels every Prometheus alert has.
import type { DocumentSchema, Execution, WorkflowDoc } from '../api';
import { upstream } from './model';

const COMMON_LABELS = ['alertname', 'severity', 'instance', 'job'];
const COMMON_ANNOTATIONS = ['summary', 'description'];

function keysOf(v: unknown): string[] {
  return v && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v as object) : [];
}

function union(a: string[], b: string[]) {
  return [...new Set([...a, ...b])];
}

export function templateNames(
  doc: WorkflowDoc,
  stepId: string | null,
  schema: DocumentSchema | null,
  recorded: Execution | null,
  secrets: string[],
): string[] {
  const names: string[] = [];
  const input = (recorded?.input ?? null) as Record<string, unknown> | null;
  const trigger = doc.trigger;
  if (trigger.type === 'prometheus') {
    const firstAlert = (Array.isArray(input?.alerts) ? input!.alerts[0] : null) as Record<string, unknown> | null;
    const labels = union(keysOf(firstAlert?.labels), COMMON_LABELS);
    const annotations = union(keysOf(firstAlert?.annotations), COMMON_ANNOTATIONS);
    if (trigger.split === 'per_alert') {
      names.push('alert.status', 'alert.fingerprint', 'alert.startsAt', 'alert.endsAt', 'alert.generatorURL');
      labels.forEach((l) => names.push(`alert.labels.${l}`));
      annotations.forEach((a) => names.push(`alert.annotations.${a}`));
    }
    names.push('trigger.status', 'trigger.receiver', 'trigger.groupKey', 'trigger.externalURL', 'trigger.alerts');
    union(keysOf(input?.commonLabels), ['alertname']).forEach((l) => names.push(`trigger.commonLabels.${l}`));
    keysOf(input?.groupLabels).forEach((l) => names.push(`trigger.groupLabels.${l}`));
    union(keysOf(input?.commonAnnotations), ['summary']).forEach((a) => names.push(`trigger.commonAnnotations.${a}`));
  } else if (trigger.type === 'schedule') {
    names.push('trigger.scheduled_at', 'trigger.fired_at');
  } else {
    names.push('trigger');
    keysOf(input).forEach((k) => names.push(`trigger.${k}`));
  }
  if (stepId) {
    for (const id of upstream(doc, stepId)) {
      const step = doc.steps.find((s) => s.id === id)!;
      names.push(`steps.${id}.status`, `steps.${id}.output`);
      const seen = recorded?.steps?.find((s) => s.id === id)?.output;
      const declared = schema?.['x-actions'][step.uses]?.outputs?.properties;
      union(keysOf(seen), keysOf(declared)).forEach((k) => names.push(`steps.${id}.output.${k}`));
    }
  }
  secrets.forEach((s) => names.push(`secrets.${s}`));
  names.push('execution.id', 'execution.workflow', 'execution.version', 'execution.started_at');
  return names;
}
