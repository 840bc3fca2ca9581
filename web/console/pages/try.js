// Try it: drop, paste or choose an image (two for a slide; a click captcha's hint may be an
// image too), choose the kind and options,
// solve it with `wait=1`, see the answer, the confidence and the time it took. The kinds and
// their options are data (kinds.js); this page only lays them out and sends them.

import { call } from '../api.js';
import { availableKinds } from '../kinds.js';
import { apiDescription } from './reference.js';
import { $, balanceChanged, busy, duration, fromTemplate, h, showError, toast } from '../ui.js';

/** How long the server may take before answering `pending` (the contract's maximum). */
const WAIT_MS = 30000;

export function mount(main) {
  main.append(fromTemplate('page-try'));
  const state = { kind: null, files: [], urls: [], lastId: null };
  const form = $('#try-form', main);
  const stopPaste = listenForPaste(main, state);
  apiDescription()
    .then((openapi) => offerKinds(main, state, availableKinds(openapi)))
    .catch((error) => showError(form, error));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy($('#try-solve', main), form, () => solve(main, state));
  });
  $('#try-report', main).addEventListener('click', (event) => {
    const card = $('#try-answer', main);
    busy(event.currentTarget, card, () => report(state));
  });
  return () => {
    stopPaste();
    for (const url of state.urls) if (url) URL.revokeObjectURL(url);
  };
}

/** The kind radio buttons (one kind: no choice to make, but still named). */
function offerKinds(main, state, kinds) {
  const fieldset = $('#try-kinds', main);
  for (const kind of kinds) {
    const input = h('input', { type: 'radio', name: 'kind', value: kind.id });
    input.addEventListener('change', () => chooseKind(main, state, kind));
    fieldset.append(h('label', { class: 'choice' }, input, ` ${kind.label}`));
  }
  fieldset.hidden = kinds.length < 2;
  fieldset.querySelector('input').checked = true;
  chooseKind(main, state, kinds[0]);
}

function chooseKind(main, state, kind) {
  state.kind = kind;
  state.files = kind.images.map(() => null);
  $('#try-answer', main).hidden = true;
  $('#try-images', main).replaceChildren(...kind.images.map((image, index) =>
    dropZone(main, state, image, index)));
  $('#try-options', main).replaceChildren(h('legend', {}, 'Options'),
    ...kind.options.map(optionField));
  $('#try-options', main).hidden = kind.options.length === 0;
}

/** One image's drop zone: a file input (keyboard), drag and drop, and a preview. */
function dropZone(main, state, image, index) {
  const id = `try-file-${image.field}`;
  const input = h('input', { type: 'file', id, accept: 'image/*', 'data-field': image.field });
  const preview = h('img', { alt: '', class: 'preview', hidden: true });
  const sample = image.sample
    ? h('button', { type: 'button', class: 'secondary' }, 'Use a sample image')
    : null;
  const zone = h('div', { class: 'drop', 'data-index': index },
    h('label', { for: id }, image.label),
    h('p', { class: 'hint' }, index === 0 ? 'Drop an image here, paste one (Ctrl+V), or choose a file.' : 'Drop an image here or choose a file.'),
    h('div', { class: 'row' }, input, sample), preview);
  sample?.addEventListener('click', async () => {
    const answer = await fetch(image.sample);
    const file = new File([await answer.blob()], image.sample, { type: 'image/png' });
    takeFile(main, state, index, file);
  });
  input.addEventListener('change', () => {
    if (input.files[0]) takeFile(main, state, index, input.files[0]);
  });
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    const file = [...event.dataTransfer.files].find((f) => f.type.startsWith('image/'));
    if (file) takeFile(main, state, index, file);
  });
  return zone;
}

/** Keeps the image for the next solve and shows it. */
function takeFile(main, state, index, file) {
  state.files[index] = file;
  if (state.urls[index]) URL.revokeObjectURL(state.urls[index]);
  state.urls[index] = URL.createObjectURL(file);
  const preview = $(`.drop[data-index="${index}"] img`, main);
  preview.src = state.urls[index];
  preview.alt = `${file.name || 'pasted image'} (${file.size.toLocaleString()} bytes)`;
  preview.hidden = false;
}

/** A pasted image goes to the first drop zone. */
function listenForPaste(main, state) {
  const onPaste = (event) => {
    const item = [...(event.clipboardData?.items ?? [])].find((i) => i.type.startsWith('image/'));
    if (!item || !state.kind) return;
    takeFile(main, state, 0, item.getAsFile());
    toast('Image pasted.');
  };
  document.addEventListener('paste', onPaste);
  return () => document.removeEventListener('paste', onPaste);
}

function optionField(option) {
  const id = `try-option-${option.field}`;
  if (option.type === 'checkbox') {
    return h('label', { class: 'choice', for: id },
      h('input', { type: 'checkbox', id, name: option.field, checked: option.checked }),
      ` ${option.label}`);
  }
  if (option.type === 'select') {
    return h('label', { for: id }, option.label,
      h('select', { id, name: option.field }, ...option.choices.map((c) => h('option', {}, c))));
  }
  const list = option.suggestions ? `${id}-list` : undefined;
  return h('label', { for: id }, option.label,
    h('input', { id, name: option.field, value: option.value ?? '', placeholder: option.placeholder, list, autocomplete: 'off' }),
    list ? h('datalist', { id: list }, ...option.suggestions.map((s) => h('option', { value: s }))) : null);
}

/** Sends the images and options; shows the answer. */
async function solve(main, state) {
  const { kind } = state;
  const missing = kind.images.find((image, index) => !image.optional && !state.files[index]);
  if (missing) throw new Error(`Choose ${missing.label.toLowerCase()} first.`);
  const form = new FormData();
  kind.images.forEach((image, index) => {
    if (state.files[index]) form.append(image.field, state.files[index]);
  });
  for (const option of kind.options) {
    const field = $(`#try-option-${option.field}`, main);
    if (option.type === 'checkbox') form.append(option.field, field.checked ? '1' : '0');
    else if (field.value.trim() !== '') form.append(option.field, field.value.trim());
  }
  // The answer shown is the last solve's until this one's comes.
  delete $('#try-result', main).dataset.status;
  const started = performance.now();
  const answer = await call('POST', kind.path, { query: { wait: 1, timeout_ms: WAIT_MS }, form });
  const roundTrip = performance.now() - started;
  balanceChanged();
  state.lastId = answer.id;
  await showAnswer(main, state, answer, roundTrip);
}

async function showAnswer(main, state, answer, roundTrip) {
  const card = $('#try-answer', main);
  card.hidden = false;
  const done = answer.status === 'done';
  const result = $('#try-result', main);
  result.textContent = done ? state.kind.describe(answer.result) : 'Still running: see Usage in a moment.';
  result.dataset.status = answer.status;
  $('#try-confidence', main).textContent = answer.confidence === undefined ? '–' : answer.confidence.toFixed(4);
  $('#try-time', main).textContent = duration(roundTrip);
  $('#try-server-time', main).textContent = answer.finished_at ? duration(answer.finished_at - answer.created_at) : '–';
  $('#try-cost-charged', main).textContent = answer.cost === undefined ? '–' : `${answer.cost} point${answer.cost === 1 ? '' : 's'}`;
  $('#try-id', main).textContent = answer.id;
  $('#try-report', main).disabled = !done;
  const view = $('#try-view', main);
  view.replaceChildren();
  if (done && state.kind.draw) {
    // The images of this solve (an optional one left out is none).
    const images = await Promise.all(state.files.map((file, index) =>
      (file ? loadImage(state.urls[index]) : null)));
    const canvas = h('canvas', { role: 'img', 'aria-label': `${state.kind.label}: ${result.textContent}` });
    state.kind.draw(canvas, images, answer.result);
    view.append(canvas);
  }
  card.scrollIntoView({ block: 'nearest' });
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error('the image cannot be shown'));
    image.src = url;
  });
}

async function report(state) {
  const refund = await call('POST', '/v2/report', { query: { id: state.lastId } });
  toast(`Refunded ${refund.refunded} point(s).`);
  balanceChanged();
}
