// An execution's graph: the version it ran, each node coloured by its step's status.
import { useMemo } from 'react';
import { Background, Controls, ReactFlow } from '@xyflow/react';
import type { StepRun, WorkflowDoc } from '../api';
import { edgesOf, layout, normalize, TRIGGER_ID } from '../builder/model';
import { nodeTypes, type StepNodeType } from '../builder/StepNode';

export function RunGraph({ document, steps, status }: { document: WorkflowDoc; steps: StepRun[]; status: string }) {
  const doc = useMemo(() => normalize(document), [document]);
  const nodes = useMemo<StepNodeType[]>(() => {
    const placed = layout(doc, {});
    return [
      {
        id: TRIGGER_ID,
        type: 'step',
        position: placed[TRIGGER_ID],
        data: { title: 'Trigger', subtitle: doc.trigger.type, isTrigger: true, status: status === 'pending' ? 'pending' : 'succeeded' },
      },
      ...doc.steps.map((s) => ({
        id: s.id,
        type: 'step' as const,
        position: placed[s.id],
        data: { title: s.id, subtitle: s.uses, status: steps.find((r) => r.id === s.id)?.status ?? 'pending' },
      })),
    ];
  }, [doc, steps, status]);
  const edges = useMemo(() => edgesOf(doc), [doc]);
  return (
    <div className="canvas run-graph">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        nodesDraggable={false}
        nodesConnectable={false}
        elementsSelectable={false}
        fitView
        fitViewOptions={{ padding: 0.3, maxZoom: 1.1 }}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
