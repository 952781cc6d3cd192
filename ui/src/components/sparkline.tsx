/**
 * Small SVG charts: {@link Bars} draws counts per interval as bars (one series stacked on another),
 * scaled to the largest total, with a tooltip per bar.
 */
import type { JSX } from 'preact';

export interface BarSeries {
  label: string;
  values: number[];
  /** A CSS class giving the fill colour. */
  class: string;
}

/** Stacked bars over equal intervals (the first series at the bottom). */
export function Bars(props: {
  series: BarSeries[];
  /** The interval labels, for tooltips (same length as the values). */
  labels: string[];
  width?: number;
  height?: number;
  title: string;
}): JSX.Element {
  const width = props.width ?? 320;
  const height = props.height ?? 48;
  const n = props.labels.length;
  const totals = props.labels.map((_, i) => props.series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const w = n > 0 ? width / n : width;
  return (
    <svg
      class="spark"
      viewBox={`0 0 ${width} ${height}`}
      width={width}
      height={height}
      role="img"
      aria-label={props.title}
      preserveAspectRatio="none"
    >
      <line x1="0" y1={height - 0.5} x2={width} y2={height - 0.5} class="spark-axis" />
      {props.labels.map((label, i) => {
        let y = height;
        const tip = `${label}: ${props.series.map((s) => `${s.values[i] ?? 0} ${s.label}`).join(', ')}`;
        return (
          <g key={i}>
            <title>{tip}</title>
            <rect x={i * w} y={0} width={w} height={height} fill="transparent" />
            {props.series.map((s) => {
              const v = s.values[i] ?? 0;
              if (v === 0) return null;
              const h = Math.max(1.5, (v / max) * (height - 2));
              y -= h;
              return (
                <rect
                  key={s.label}
                  x={i * w + 0.5}
                  y={y}
                  width={Math.max(1, w - 1)}
                  height={h}
                  class={s.class}
                />
              );
            })}
          </g>
        );
      })}
    </svg>
  );
}
