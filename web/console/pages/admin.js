// The operators' pages (admin role): users (find, create, change role), points grants with a
// reason, and the server's state from the numbers of /metrics.

import { call, currentSession } from '../api.js';
import {
  $, balanceChanged, busy, every, fillRows, formValues, fromTemplate, h, micros, number,
  showError, toast, when,
} from '../ui.js';

/** Users per page of a search. */
const USERS_PAGE = 20;
/** How often the server page reads the state. */
const SERVER_POLL_MS = 2000;

export function mountUsers(main) {
  main.append(fromTemplate('page-admin-users'));
  const find = $('#users-find', main);
  const state = { query: '', next: null };
  const search = (after) => listUsers(main, state, after);
  find.addEventListener('submit', (event) => {
    event.preventDefault();
    state.query = formValues(find).q.trim();
    busy($('button', find), find.closest('section'), () => search(null));
  });
  $('#users-more', main).addEventListener('click', (event) =>
    busy(event.currentTarget, find.closest('section'), () => search(state.next)));
  busy($('button', find), find.closest('section'), () => search(null));
  const create = $('#users-create', main);
  create.addEventListener('submit', (event) => {
    event.preventDefault();
    busy($('button', create), create, async () => {
      const values = formValues(create);
      const made = await call('POST', '/v2/admin/users', {
        json: { ...values, points: Number(values.points) },
      });
      toast(`Created ${values.username} (id ${made.user_id}).`);
      create.reset();
      state.query = values.username;
      $('input[name=q]', find).value = values.username;
      await search(null);
    });
  });
}

async function listUsers(main, state, after) {
  // A slower answer to an earlier search must not replace a later one's.
  state.asked = (state.asked ?? 0) + 1;
  const asked = state.asked;
  const query = state.query;
  const page = await call('GET', '/v2/admin/users', {
    query: { q: query, after, limit: USERS_PAGE },
  });
  if (asked !== state.asked) return;
  state.next = page.next_after ?? null;
  $('#users-table', main).dataset.query = query;
  const rows = page.users.map((user) => userRow(main, user));
  const tbody = $('#users-table tbody', main);
  if (after) tbody.append(...rows);
  else tbody.replaceChildren(...rows);
  $('#users-more', main).hidden = !state.next;
}

/** A user's row, with the role as a select that saves on change. */
function userRow(main, user) {
  const select = h('select', { 'aria-label': `Role of ${user.username}`, 'data-user': user.username },
    ...['user', 'developer', 'admin'].map((role) =>
      h('option', { selected: role === user.role }, role)));
  // Admins cannot change their own role (the server refuses it too).
  select.disabled = user.user_id === currentSession()?.userId;
  select.addEventListener('change', () => busy(select, $('#users-find', main).closest('section'), async () => {
    await call('POST', '/v2/admin/users/role', { json: { user_id: user.user_id, role: select.value } });
    toast(`${user.username} is now ${select.value}; their login token gets the new role at their next sign-in.`);
  }));
  return h('tr', { 'data-username': user.username },
    h('th', { scope: 'row' }, user.username, h('br'), h('small', { class: 'mono' }, user.user_id)),
    h('td', {}, select),
    h('td', { 'data-points': user.points }, number(user.points)),
    h('td', {}, number(user.reserved)),
    h('td', {}, user.has_key ? 'yes' : 'no'),
    h('td', {}, when(user.created_at)));
}

export function mountPoints(main) {
  main.append(fromTemplate('page-admin-points'));
  const form = $('#points-form', main);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy($('button', form), form, async () => {
      const values = formValues(form);
      const granted = await call('POST', '/v2/admin/points', {
        json: { username: values.username.trim(), points: Number(values.points), reason: values.reason },
      });
      const done = $('#points-done', main);
      done.textContent = `${values.username} now has ${number(granted.points)} points (${number(granted.reserved)} reserved).`;
      done.dataset.points = granted.points;
      form.reset();
      balanceChanged(); // the admin may have granted themselves points
    });
  });
}

export function mountServer(main) {
  main.append(fromTemplate('page-admin-server'));
  const card = $('#nodes-title', main).closest('section');
  let previous = null;
  return every(SERVER_POLL_MS, async () => {
    try {
      const state = await call('GET', '/v2/admin/server');
      showServer(main, state, previous);
      previous = state;
      showError(card, null);
    } catch (error) {
      showError(card, error);
    }
  });
}

function showServer(main, state, previous) {
  const { totals, queue } = state;
  const set = (id, text) => { $(id, main).textContent = text; };
  set('#server-queue', `${number(queue.depth)} of ${number(queue.capacity)}`);
  const meter = $('#server-queue-meter', main);
  meter.max = queue.capacity;
  meter.value = queue.depth;
  if (previous) {
    const seconds = (state.at - previous.at) / 1000;
    const finished = totals.results_done - previous.totals.results_done;
    set('#server-rate', seconds > 0 ? (finished / seconds).toFixed(1) : '–');
  }
  set('#server-done', number(totals.results_done));
  set('#server-failed', number(totals.results_failed));
  const lookups = totals.cache_hits + totals.cache_misses;
  set('#server-cache', lookups ? `${number(totals.cache_hits)} (${Math.round(100 * totals.cache_hits / lookups)} %)` : '0');
  set('#server-latency', `${micros(totals.recognize_us_p50)} / ${micros(totals.recognize_us_p99)}`);
  set('#server-wait', `${micros(totals.queue_wait_us_p50)} / ${micros(totals.queue_wait_us_p99)}`);
  set('#server-busy', number(totals.uploads_queue_full + totals.uploads_waiters_full));
  set('#server-connections', number(totals.connections_open));
  set('#server-threads', number(state.recognition_threads));
  set('#server-models', state.models.join(', '));
  fillRows($('#server-nodes tbody', main), state.servers.map((node) =>
    [node.id, node.url, node.shards, node.accel, node.queue, node.status]));
}
