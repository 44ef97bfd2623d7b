// How a node of the graph looks: the trigger, or a step with its action, and its state (not
// configured yet, a save error, or a run's status).
import { Handle, Position, type Node, type NodeProps } from '@xyflow/react';

export type StepNodeData = {
  title: string;
  subtitle: string;
  isTrigger?: boolean;
  /** What is missing or wrong, shown as a mark and in the tooltip. */
  problem?: string;
  /** A run's status for this step. */
  status?: string;
};

export type StepNodeType = Node<StepNodeData, 'step'>;

export function StepNode({ data, selected }: NodeProps<StepNodeType>) {
  const classes = ['flow-node'];
  if (data.isTrigger) classes.push('trigger');
  if (data.problem) classes.push('unconfigured');
  if (data.status) classes.push(`status-${data.status}`);
  if (selected) classes.push('selected');
  return (
    <div className={classes.join(' ')} title={data.problem} data-node={data.title} data-status={data.status}>
      {!data.isTrigger && <Handle type="target" position={Position.Top} />}
      <div className="flow-node-title">
        {data.problem && (
          <span className="mark" aria-label="not configured">
            !
          </span>
        )}
        {data.title}
      </div>
      <div className="flow-node-sub">{data.subtitle}</div>
      {data.status && <div className="flow-node-status">{data.status}</div>}
      <Handle type="source" position={Position.Bottom} />
    </div>
  );
}

export const nodeTypes = { step: StepNode };
