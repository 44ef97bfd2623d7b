// The builder's graph: drag nodes, connect them (an edge is a `needs`), delete with the
// Delete key, zoom and fit with the controls.
import { useEffect, useMemo, useState } from 'react';
import {
  Background,
  Controls,
  ReactFlow,
  applyNodeChanges,
  useReactFlow,
  type Connection,
  type EdgeChange,
  type NodeChange,
} from '@xyflow/react';
import type { WorkflowDoc } from '../api';
import type { Position } from './draft';
import { edgesOf, layout, TRIGGER_ID } from './model';
import { nodeTypes, type StepNodeType } from './StepNode';

export function Canvas({
  doc,
  positions,
  problems,
  selected,
  onSelect,
  onMove,
  onConnect,
  onRemoveEdge,
  onRemoveStep,
  onDropAction,
  readOnly,
}: {
  doc: WorkflowDoc;
  positions: Record<string, Position>;
  problems: Record<string, string>;
  selected: string | null;
  onSelect: (id: string | null) => void;
  onMove: (id: string, p: Position) => void;
  onConnect: (source: string, target: string) => void;
  onRemoveEdge: (source: string, target: string) => void;
  onRemoveStep: (id: string) => void;
  onDropAction: (uses: string, at: Position) => void;
  readOnly: boolean;
}) {
  const { screenToFlowPosition, fitView } = useReactFlow();
  const placed = useMemo(() => layout(doc, positions), [doc, positions]);
  const [nodes, setNodes] = useState<StepNodeType[]>([]);
  const [selectedEdges, setSelectedEdges] = useState<Set<string>>(new Set());

  // Nodes follow the document; React Flow's own state (measured size) is kept per id.
  useEffect(() => {
    setNodes((prev) => {
      const old = new Map(prev.map((n) => [n.id, n]));
      const triggerNode: StepNodeType = {
        ...old.get(TRIGGER_ID),
        id: TRIGGER_ID,
        type: 'step',
        position: placed[TRIGGER_ID],
        selected: selected === TRIGGER_ID,
        deletable: false,
        data: { title: 'Trigger', subtitle: doc.trigger.type, isTrigger: true, problem: problems[TRIGGER_ID] },
      };
      const steps: StepNodeType[] = doc.steps.map((s) => ({
        ...old.get(s.id),
        id: s.id,
        type: 'step',
        position: placed[s.id],
        selected: selected === s.id,
        deletable: !readOnly,
        data: { title: s.id, subtitle: s.uses, problem: problems[s.id] },
      }));
      return [triggerNode, ...steps];
    });
  }, [doc, placed, problems, selected, readOnly]);

  const edges = useMemo(
    () => edgesOf(doc).map((e) => ({ ...e, selected: selectedEdges.has(e.id), deletable: !readOnly })),
    [doc, selectedEdges, readOnly],
  );

  const onNodesChange = (changes: NodeChange<StepNodeType>[]) => {
    for (const c of changes) {
      if (c.type === 'position' && c.position && !c.dragging) onMove(c.id, c.position);
      if (c.type === 'select' && c.selected) onSelect(c.id);
      if (c.type === 'remove' && c.id !== TRIGGER_ID) onRemoveStep(c.id);
    }
    setNodes((ns) => applyNodeChanges(changes.filter((c) => c.type !== 'remove'), ns));
  };

  const onEdgesChange = (changes: EdgeChange[]) => {
    for (const c of changes) {
      if (c.type === 'select') {
        setSelectedEdges((s) => {
          const next = new Set(s);
          if (c.selected) next.add(c.id);
          else next.delete(c.id);
          return next;
        });
      }
      if (c.type === 'remove') {
        const edge = edgesOf(doc).find((e) => e.id === c.id);
        if (edge) onRemoveEdge(edge.source, edge.target);
      }
    }
  };

  const connect = (c: Connection) => {
    if (c.source && c.target && c.source !== c.target) onConnect(c.source, c.target);
  };

  // Fit once the first nodes are measured.
  const count = doc.steps.length;
  useEffect(() => {
    const t = setTimeout(() => fitView({ padding: 0.3, maxZoom: 1.2 }), 50);
    return () => clearTimeout(t);
  }, [count, fitView]);

  return (
    <div
      className="canvas"
      data-testid="canvas"
      onDragOver={(e) => {
        e.preventDefault();
        e.dataTransfer.dropEffect = 'move';
      }}
      onDrop={(e) => {
        e.preventDefault();
        const uses = e.dataTransfer.getData('application/x-alertflow-action');
        if (uses && !readOnly) onDropAction(uses, screenToFlowPosition({ x: e.clientX, y: e.clientY }));
      }}
    >
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={connect}
        onPaneClick={() => onSelect(null)}
        nodesConnectable={!readOnly}
        deleteKeyCode={readOnly ? null : ['Delete', 'Backspace']}
        fitView
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
