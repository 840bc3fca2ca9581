// The console's entry: the pages by hash route (#/try, #/admin/users, ...), the header with
// the signed-in user and their live balance, sign out.
//
// Each page module exports `mount(main)`, which fills <main> and may return a function that
// stops what the page started (polls). Pages that need a user send visitors to sign in
// first; admin pages need the admin role (the server checks it too: the console only hides
// what would be refused).

import { call, currentSession, isAdmin, onSessionChange, signOut } from './api.js';
import { $, every, number } from './ui.js';
import * as signin from './pages/signin.js';
import * as account from './pages/account.js';
import * as tryIt from './pages/try.js';
import * as usage from './pages/usage.js';
import * as models from './pages/models.js';
import * as admin from './pages/admin.js';
import * as reference from './pages/reference.js';

const PAGES = {
  '/signin': { page: signin, title: 'Sign in', access: 'anyone' },
  '/account': { page: account, title: 'Account', access: 'user' },
  '/try': { page: tryIt, title: 'Try it', access: 'user' },
  '/usage': { page: usage, title: 'Usage', access: 'user' },
  '/models': { page: models, title: 'Models', access: 'user' },
  '/admin/users': { page: { mount: admin.mountUsers }, title: 'Users', access: 'admin' },
  '/admin/points': { page: { mount: admin.mountPoints }, title: 'Points', access: 'admin' },
  '/admin/server': { page: { mount: admin.mountServer }, title: 'Server', access: 'admin' },
  '/reference': { page: reference, title: 'API reference', access: 'anyone' },
};

/** How often the balance in the header is read while signed in. */
const BALANCE_POLL_MS = 2000;

let unmountPage = null;
let stopBalancePoll = null;

/** Where a route leads the current visitor: the page, or sign in, or their start page. */
function resolveRoute(hash) {
  const path = hash.replace(/^#/, '') || '/';
  const entry = PAGES[path];
  const session = currentSession();
  if (!entry) return session ? '/account' : '/signin';
  if (entry.access === 'user' && !session) return '/signin';
  if (entry.access === 'admin' && !isAdmin()) return session ? '/account' : '/signin';
  if (path === '/signin' && session) return '/account';
  return path;
}

function render() {
  const path = resolveRoute(location.hash);
  if (`#${path}` !== location.hash) {
    location.replace(`#${path}`); // fires hashchange, which renders
    return;
  }
  const { page, title } = PAGES[path];
  unmountPage?.();
  unmountPage = null;
  const main = $('#main');
  main.replaceChildren();
  main.dataset.page = path;
  document.title = `${title} · aiocr console`;
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.getAttribute('href') === `#${path}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  unmountPage = page.mount(main) ?? null;
  // Keyboard and screen-reader users land on the new page's heading, unless the page put
  // the focus somewhere itself (sign in: the username field).
  const heading = main.querySelector('h1');
  if (heading && !main.contains(document.activeElement)) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

/** The header: who is signed in, the balance (live), the links they may use. */
function showSession(session) {
  $('#who').hidden = !session;
  for (const link of document.querySelectorAll('[data-signed-in]')) link.hidden = !session;
  for (const link of document.querySelectorAll('[data-admin]')) link.hidden = session?.role !== 'admin';
  stopBalancePoll?.();
  stopBalancePoll = null;
  if (!session) return;
  $('#who-name').textContent = `${session.username} (${session.role})`;
  stopBalancePoll = every(BALANCE_POLL_MS, refreshBalance);
}

/** Reads the balance into the header (and tells the pages that show it). */
async function refreshBalance() {
  if (!currentSession()) return;
  const balance = await call('GET', '/v2/user/point');
  const slot = $('#balance');
  slot.dataset.points = balance.points;
  slot.dataset.reserved = balance.reserved;
  slot.textContent = `${number(balance.points)} points · ${number(balance.reserved)} reserved`;
  document.dispatchEvent(new CustomEvent('aiocr:balance', { detail: balance }));
}

onSessionChange((session) => {
  showSession(session);
  render();
});

// Pages ask for a fresh read after something that changes the balance (ui.balanceChanged).
document.addEventListener('aiocr:refresh-balance', () => { refreshBalance().catch(() => {}); });

$('#signout').addEventListener('click', () => {
  signOut();
  location.hash = '#/signin';
});

window.addEventListener('hashchange', render);
showSession(currentSession());
render();
