// A time chart (uPlot: a few tens of KB, canvas, no dependencies). Each series is a line; the
// numbers behind it are also on the page as text, so the chart is an aid, not the only source.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const COLOURS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#6b7280'];

export interface ChartSeries {
  name: string;
  values: number[];
}

export function TimeChart(props: { title: string; times: number[]; series: ChartSeries[]; format: (n: number) => string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const width = () => Math.max(240, element.clientWidth);
    const plot = new uPlot(
      {
        width: width(),
        height: 180,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        axes: [{}, { values: (_u, ticks) => ticks.map(props.format), size: 70 }],
        series: [{}, ...props.series.map((s, i) => ({ label: s.name, stroke: COLOURS[i % COLOURS.length], width: 2, value: (_u: uPlot, v: number | null) => (v === null ? '–' : props.format(v)) }))],
      },
      [props.times, ...props.series.map((s) => s.values)],
      element,
    );
    const observer = new ResizeObserver(() => plot.setSize({ width: width(), height: 180 }));
    observer.observe(element);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [props.times, props.series, props.format]);
  return (
    <figure class="chart">
      <figcaption>{props.title}</figcaption>
      <div ref={box} role="img" aria-label={`${props.title}, over time, by ${props.series.map((s) => s.name).join(', ') || 'nothing yet'}`} />
    </figure>
  );
}
