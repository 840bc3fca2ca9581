// The models a user brought (dddd_trainer's ONNX file and charsets.json): add one (checked by
// the server before it is accepted), the list of the user's and the public ones with their
// numbers (uploads, wrong-answer reports, report rate), remove one's own. A model is used by
// its name: `model=NAME` on an upload, or the model field of Try it.

import { call, isAdmin } from '../api.js';
import { $, busy, every, fillRows, fromTemplate, h, number, toast, when } from '../ui.js';

/** How often the list (and its numbers) is read again. */
const LIST_POLL_MS = 5000;

export function mount(main) {
  main.append(fromTemplate('page-models'));
  const listSection = $('#models-table', main).closest('section');
  const refresh = async () => showModels(main, await call('GET', '/v2/models'));
  $('#models-public', main).hidden = !isAdmin();
  const form = $('#models-add', main);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const button = $('button[type=submit]', form);
    busy(button, form.closest('section'), async () => {
      const body = new FormData(form);
      if (!isAdmin()) body.delete('public');
      const added = await call('POST', '/v2/models', { form: body });
      toast(`Model ${added.name} added: use it as model=${added.name}.`);
      form.reset();
      await refresh();
    });
  });
  main.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-remove]');
    if (!button) return;
    const name = button.dataset.remove;
    if (!window.confirm(`Remove the model ${name}? Uploads asking for it are refused at once.`)) return;
    busy(button, listSection, async () => {
      await call('POST', '/v2/models/remove', { json: { name } });
      toast(`Model ${name} removed.`);
      await refresh();
    });
  });
  return every(LIST_POLL_MS, () => refresh().catch((error) => {
    $('[data-error]', listSection).textContent = error.message;
  }));
}

function showModels(main, listing) {
  const rows = listing.models.map((model) => [
    h('td', { dataset: { name: model.name } }, model.name),
    model.own ? (model.public ? 'yours, public' : 'yours') : 'public',
    `${model.channels === 3 ? 'RGB' : 'gray'} ${model.width ?? 'any'} × ${model.height}`,
    number(model.charset_size),
    h('td', { dataset: { requests: model.requests } }, number(model.requests)),
    h('td', { dataset: { reports: model.reports } }, number(model.reports)),
    `${(model.report_rate * 100).toFixed(1)} %`,
    when(model.created_at),
    h('td', {}, model.own
      ? h('button', { type: 'button', class: 'danger', dataset: { remove: model.name } }, 'Remove')
      : ''),
  ]);
  fillRows($('#models-table tbody', main), rows);
  $('#models-empty', main).hidden = listing.models.length > 0;
  const usage = listing.usage;
  $('#models-usage', main).textContent = `You keep ${number(usage.models)} of at most `
    + `${number(usage.max_models)} models, ${number(usage.bytes)} of ${number(usage.max_bytes)} bytes.`;
}
