/**
 * The task graph of a job: one box per task, an arrow from each task to the tasks that need it,
 * laid out left to right by dagre (loaded with the job page only), each box coloured by its
 * task's state, with its attempts and progress. Fan-out and fan-in show as arrows that split and
 * join.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { TaskRecord } from '../lib/types';

const NODE_W = 168;
const NODE_H = 50;

interface Laid {
  width: number;
  height: number;
  nodes: { name: string; x: number; y: number }[];
  edges: { from: string; to: string; d: string }[];
}

type Dagre = typeof import('@dagrejs/dagre');
let dagrePromise: Promise<Dagre> | null = null;

/** The needs of every task: as the job's definition says, or (older engines) the task above. */
export function needsOf(tasks: TaskRecord[]): Map<string, string[]> {
  return new Map(tasks.map((t, i) => [t.name, t.needs ?? (i === 0 ? [] : [tasks[i - 1]!.name])]));
}

function layout(dagre: Dagre, tasks: TaskRecord[]): Laid {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 56, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const names = new Set(tasks.map((t) => t.name));
  for (const t of tasks) g.setNode(t.name, { width: NODE_W, height: NODE_H });
  for (const [name, needs] of needsOf(tasks)) for (const n of needs) if (names.has(n)) g.setEdge(n, name);
  dagre.layout(g);
  const label = g.graph() as { width?: number; height?: number };
  const nodes = tasks.map((t) => {
    const n = g.node(t.name) as { x: number; y: number };
    return { name: t.name, x: n.x - NODE_W / 2, y: n.y - NODE_H / 2 };
  });
  const edges = g.edges().map((e) => {
    const pts = ((g.edge(e) as { points?: { x: number; y: number }[] }).points ?? []).slice();
    let d = '';
    if (pts.length > 0) {
      d = `M${pts[0]!.x},${pts[0]!.y}`;
      // A smooth curve through dagre's points: quadratic segments between their midpoints.
      for (let i = 1; i < pts.length - 1; i++) {
        const mx = (pts[i]!.x + pts[i + 1]!.x) / 2;
        const my = (pts[i]!.y + pts[i + 1]!.y) / 2;
        d += ` Q${pts[i]!.x},${pts[i]!.y} ${mx},${my}`;
      }
      const last = pts[pts.length - 1]!;
      d += ` L${last.x},${last.y}`;
    }
    return { from: e.v, to: e.w, d };
  });
  return { width: label.width ?? 0, height: label.height ?? 0, nodes, edges };
}

/** The job's task graph (see the module comment). `onSelect` is called with a clicked task. */
export function TaskGraph({
  tasks,
  selected,
  onSelect,
}: {
  tasks: TaskRecord[];
  selected?: string | null;
  onSelect?: (name: string) => void;
}): JSX.Element {
  const shape = tasks.map((t) => `${t.name}<${(t.needs ?? []).join(',')}`).join('|');
  const [laid, setLaid] = useState<Laid | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    dagrePromise ??= import('@dagrejs/dagre');
    dagrePromise
      .then((dagre) => {
        if (live) setLaid(layout(dagre, tasks));
      })
      .catch((err: unknown) => {
        if (live) setError(String(err));
      });
    return () => {
      live = false;
    };
  }, [shape]);
  if (error) return <p class="muted">The graph could not be drawn: {error}</p>;
  if (!laid) return <p class="muted">Drawing the graph…</p>;
  const byName = new Map(tasks.map((t) => [t.name, t]));
  return (
    <div class="graph-wrap">
      <svg
        class="graph"
        width={laid.width}
        height={laid.height}
        viewBox={`0 0 ${laid.width} ${laid.height}`}
        style={{ maxWidth: '100%', height: 'auto' }}
        role="img"
        aria-label={`task graph: ${tasks.length} tasks`}
      >
        <defs>
          <marker
            id="arrow"
            viewBox="0 0 10 10"
            refX="9"
            refY="5"
            markerWidth="7"
            markerHeight="7"
            orient="auto-start-reverse"
          >
            <path d="M0,0 L10,5 L0,10 z" class="arrow-head" />
          </marker>
        </defs>
        {laid.edges.map((e) => {
          const from = byName.get(e.from)?.state;
          return (
            <path
              key={`${e.from}>${e.to}`}
              d={e.d}
              class={`edge ${from === 'succeeded' ? 'done' : ''}`}
              marker-end="url(#arrow)"
            />
          );
        })}
        {laid.nodes.map((n) => {
          const t = byName.get(n.name)!;
          const pct = t.progress === null || t.progress === undefined ? null : Math.round(t.progress * 100);
          return (
            <g
              key={n.name}
              class={`node t-${t.state} ${selected === n.name ? 'selected' : ''}`}
              transform={`translate(${n.x},${n.y})`}
              data-task={n.name}
              data-state={t.state}
              onClick={() => onSelect?.(n.name)}
            >
              <title>
                {`${t.name}: ${t.state}${t.attempts ? `, ${t.attempts} attempt${t.attempts > 1 ? 's' : ''}` : ''}${t.error ? `\n${t.error}` : ''}`}
              </title>
              <rect width={NODE_W} height={NODE_H} rx="7" />
              <text x="10" y="20" class="node-name">
                {t.name.length > 20 ? `${t.name.slice(0, 19)}…` : t.name}
              </text>
              <text x="10" y="37" class="node-sub">
                {t.state}
                {t.attempts > 1 ? ` · ${t.attempts} attempts` : ''}
                {pct !== null && t.state === 'running' ? ` · ${pct}%` : ''}
              </text>
              {pct !== null && t.state === 'running' ? (
                <rect x="0" y={NODE_H - 4} width={(NODE_W * pct) / 100} height="4" class="node-progress" />
              ) : null}
            </g>
          );
        })}
      </svg>
    </div>
  );
}
