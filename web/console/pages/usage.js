// Usage: the recent days' counts and points spent (GET /v2/user/stats) as a chart and a
// table, and the recent uploads a page at a time (GET /v2/user/uploads, newest first).

import { call } from '../api.js';
import { usageChart } from '../chart.js';
import { $, busy, fillRows, fromTemplate, h, showError, when } from '../ui.js';

/** Uploads per page. */
const PAGE = 20;

export function mount(main) {
  main.append(fromTemplate('page-usage'));
  const state = { chart: null, pages: [], next: null };
  const statsCard = $('#usage-title', main).closest('section');
  const uploadsCard = $('#uploads-title', main).closest('section');
  const loadStats = () => showStats(main, state).catch((error) => showError(statsCard, error));
  const loadUploads = (before) => showUploads(main, state, before);
  loadStats();
  busy($('#uploads-newest', main), uploadsCard, () => loadUploads(null));
  $('#usage-days', main).addEventListener('change', loadStats);
  $('#usage-refresh', main).addEventListener('click', () => {
    loadStats();
    busy($('#uploads-newest', main), uploadsCard, () => loadUploads(null));
  });
  $('#uploads-newest', main).addEventListener('click', (event) =>
    busy(event.currentTarget, uploadsCard, () => loadUploads(null)));
  $('#uploads-older', main).addEventListener('click', (event) =>
    busy(event.currentTarget, uploadsCard, () => loadUploads(state.next)));
  return () => state.chart?.destroy();
}

async function showStats(main, state) {
  const days = Number($('#usage-days', main).value);
  const stats = await call('GET', '/v2/user/stats', { query: { days } });
  state.chart?.destroy();
  const container = $('#usage-chart', main);
  container.replaceChildren();
  state.chart = usageChart(container, stats.days);
  const table = $('#usage-days-table tbody', main);
  fillRows(table, stats.days.map((row) => [row.day, row.uploads, row.done, row.failed,
    row.reported, row.points_spent, row.cache_hits]));
  // Today's figures, for tests and for anyone reading the page's data.
  const today = stats.days[stats.days.length - 1];
  container.dataset.todayUploads = today.uploads;
  container.dataset.todayPoints = today.points_spent;
}

async function showUploads(main, state, before) {
  const page = await call('GET', '/v2/user/uploads', { query: { before, limit: PAGE } });
  state.next = page.next_before ?? null;
  fillRows($('#uploads-table tbody', main), page.uploads.map(uploadRow));
  $('#uploads-empty', main).hidden = page.uploads.length > 0 || before !== null;
  $('#uploads-older', main).disabled = !state.next;
  $('#uploads-older', main).hidden = !state.next && before === null;
}

function uploadRow(upload) {
  const answer = upload.status === 'failed'
    ? h('span', { class: 'failed' }, upload.error ?? 'failed')
    : formatResult(upload.result);
  return [
    when(upload.created_at),
    h('td', { 'data-status': upload.status }, upload.reported ? `${upload.status}, reported` : upload.status),
    h('td', { class: 'answer' }, answer),
    upload.confidence === undefined ? '–' : upload.confidence.toFixed(3),
    upload.model ?? '–',
    upload.cost,
    h('td', { class: 'mono' }, upload.id),
  ];
}

/** Text as it is; other kinds' answers (boxes, a position) as JSON. */
function formatResult(result) {
  if (result === undefined) return '…';
  return typeof result === 'string' ? result : JSON.stringify(result);
}
