// The account: the balance (live, from the header's poll) and the API key (create, replace
// — shown once —, revoke). Managing the key needs the login token, which the console has.

import { call } from '../api.js';
import { $, busy, fromTemplate, number, showError, toast, when } from '../ui.js';

export function mount(main) {
  main.append(fromTemplate('page-account'));
  const onBalance = (event) => showBalance(main, event.detail);
  document.addEventListener('aiocr:balance', onBalance);
  const slot = document.getElementById('balance');
  if (slot.dataset.points !== '') {
    showBalance(main, { points: Number(slot.dataset.points), reserved: Number(slot.dataset.reserved) });
  }
  wireKey(main);
  return () => document.removeEventListener('aiocr:balance', onBalance);
}

function showBalance(main, balance) {
  const points = $('#account-points', main);
  const reserved = $('#account-reserved', main);
  points.textContent = number(balance.points);
  points.dataset.value = balance.points;
  reserved.textContent = number(balance.reserved);
  reserved.dataset.value = balance.reserved;
}

function wireKey(main) {
  const create = $('#key-create', main);
  const revoke = $('#key-revoke', main);
  const keySection = create.closest('section');
  const refresh = async () => {
    const status = await call('GET', '/v2/user/apikey');
    showKeyStatus(main, status);
  };
  refresh().catch((error) => showError(keySection, error));
  create.addEventListener('click', () => busy(create, keySection, async () => {
    if (create.dataset.replace === 'true'
        && !window.confirm('Replace the key? The current one stops working at once.')) return;
    const made = await call('POST', '/v2/user/apikey');
    $('#key-value', main).textContent = made.api_key;
    $('#key-shown', main).hidden = false;
    $('#key-copy', main).focus();
    await refresh();
  }));
  revoke.addEventListener('click', () => busy(revoke, keySection, async () => {
    if (!window.confirm('Revoke the key? Clients using it stop working at once.')) return;
    await call('POST', '/v2/user/apikey/revoke');
    $('#key-shown', main).hidden = true;
    toast('The key is revoked.');
    await refresh();
  }));
  $('#key-copy', main).addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('#key-value', main).textContent);
      toast('Copied.');
    } catch {
      toast('Copying is not allowed here: select the key and copy it by hand.');
    }
  });
}

function showKeyStatus(main, status) {
  const create = $('#key-create', main);
  $('#key-status', main).textContent = status.has_key
    ? `You have a key, made ${when(status.created_at)}.`
    : 'You have no key.';
  $('#key-status', main).dataset.hasKey = String(status.has_key);
  create.textContent = status.has_key ? 'Replace the key' : 'Create a key';
  create.dataset.replace = String(status.has_key);
  $('#key-revoke', main).hidden = !status.has_key;
}
