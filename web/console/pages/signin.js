// Sign in: username and password for a login token, kept in memory (api.js).

import { signIn } from '../api.js';
import { $, busy, formValues, fromTemplate } from '../ui.js';

export function mount(main) {
  main.append(fromTemplate('page-signin'));
  const form = $('#signin-form', main);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const { username, password } = formValues(form);
    // On success the session change renders the account page.
    busy($('button[type=submit]', form), form, () => signIn(username.trim(), password));
  });
  $('input[name=username]', form).focus();
}
