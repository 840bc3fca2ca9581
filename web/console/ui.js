// Small DOM helpers shared by the pages. Text always goes in as textContent (never as HTML),
// so nothing an answer contains can become markup.

/** The first element matching `selector` under `root`; throws when there is none (a page
 *  and its template disagree: a bug to see at once, not a silent no-op). */
export function $(selector, root = document) {
  const found = root.querySelector(selector);
  if (!found) throw new Error(`console: no ${selector}`);
  return found;
}

/** A new element with attributes and children (strings become text nodes). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === undefined || value === null) continue;
    if (name === 'dataset') Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** A copy of a page's <template> from index.html. */
export function fromTemplate(id) {
  const template = document.getElementById(id);
  if (!(template instanceof HTMLTemplateElement)) throw new Error(`console: no template ${id}`);
  return template.content.cloneNode(true);
}

/** Shows a message in the page's error slot (or clears it). */
export function showError(root, error) {
  const slot = root.querySelector('[data-error]');
  if (slot) slot.textContent = error ? error.message ?? String(error) : '';
}

/** A short message for screen readers and eyes, cleared after a while. */
let toastTimer = 0;
export function toast(message) {
  const slot = document.getElementById('toast');
  slot.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { slot.textContent = ''; }, 4000);
}

/** Runs `work` with `button` disabled meanwhile; errors go to the root's error slot. */
export async function busy(button, root, work) {
  button.disabled = true;
  showError(root, null);
  try {
    return await work();
  } catch (error) {
    showError(root, error);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

/** A form's fields as an object of strings (checkboxes as booleans). */
export function formValues(form) {
  const values = {};
  for (const field of form.elements) {
    if (!field.name) continue;
    values[field.name] = field.type === 'checkbox' ? field.checked : field.value;
  }
  return values;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });

/** Unix milliseconds as a local date and time. */
export function when(ms) {
  return ms ? dateTime.format(new Date(ms)) : '–';
}

export function number(value) {
  return value === undefined || value === null ? '–' : Number(value).toLocaleString();
}

/** Milliseconds, readable. */
export function duration(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return '–';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Microseconds, readable. */
export function micros(us) {
  return us < 1000 ? `${us} µs` : duration(us / 1000);
}

/**
 * Calls `tick` now and every `ms` while the page is shown and the tab visible; returns the
 * function that stops it. A tick never overlaps the previous one.
 */
export function every(ms, tick) {
  let stopped = false;
  let timer = 0;
  const run = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try { await tick(); } catch { /* the page shows its own errors */ }
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => { stopped = true; clearTimeout(timer); };
}

/** Replaces a table body's rows. */
export function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => h('tr', {}, ...cells.map((cell) =>
    cell instanceof Node && cell.nodeName === 'TD' ? cell : h('td', {}, cell)))));
}

/** Asks the header to read the balance now (after an upload, a grant...). */
export function balanceChanged() {
  document.dispatchEvent(new Event('aiocr:refresh-balance'));
}
