// The usage chart: uploads per day as bars and points spent as a line, drawn by uPlot
// (vendor/uplot, MIT, pinned; web/README.md says why a library and where it came from).
//
// uPlot sizes itself in pixels: the chart follows its container's width (360 px phones
// included) through a ResizeObserver. Its canvas is decoration for sighted users; the page
// has the same numbers as a table.

import uPlot from './vendor/uplot/uPlot.esm.js';

const HEIGHT = 240;
/** Tick steps for counts: whole numbers only. */
const WHOLE_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8];

/**
 * Draws `rows` ({day, uploads, points_spent, ...}, oldest first) into `container`; returns
 * an object whose `destroy()` removes the chart and its observer.
 */
export function usageChart(container, rows) {
  const days = rows.map((row) => row.day.slice(5)); // MM-DD: the year is the same
  const data = [
    rows.map((_, index) => index),
    rows.map((row) => row.uploads),
    rows.map((row) => row.points_spent),
  ];
  const options = {
    width: Math.max(container.clientWidth, 280),
    height: HEIGHT,
    scales: {
      x: { time: false, range: [-0.5, rows.length - 0.5] },
      uploads: { range: (_, __, max) => [0, Math.max(max, 1)] },
      points: { range: (_, __, max) => [0, Math.max(max, 1)] },
    },
    axes: [
      { values: (_, ticks) => ticks.map((tick) => days[tick] ?? ''), incrs: [1] },
      { scale: 'uploads', label: 'Uploads', incrs: WHOLE_STEPS },
      { scale: 'points', label: 'Points spent', side: 1, grid: { show: false }, incrs: WHOLE_STEPS },
    ],
    series: [
      { label: 'Day', value: (_, index) => (index === null ? '' : rows[index]?.day ?? '') },
      {
        label: 'Uploads',
        scale: 'uploads',
        fill: 'rgba(31, 95, 191, 0.35)',
        stroke: '#1f5fbf',
        paths: uPlot.paths.bars({ size: [0.6, 64] }),
        points: { show: false },
      },
      { label: 'Points spent', scale: 'points', stroke: '#b3261e', width: 2, points: { show: true, size: 6 } },
    ],
    legend: { live: true },
  };
  const chart = new uPlot(options, data, container);
  const observer = new ResizeObserver(() => {
    chart.setSize({ width: Math.max(container.clientWidth, 280), height: HEIGHT });
  });
  observer.observe(container);
  return {
    destroy() {
      observer.disconnect();
      chart.destroy();
    },
  };
}
