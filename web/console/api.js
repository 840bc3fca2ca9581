// The API as the console uses it: the session and one call function.
//
// The session (the login token) lives in this module's memory only: never in a cookie,
// localStorage or sessionStorage, so nothing can read it once the tab is gone, and a page
// reload signs out. Every answer is the contract's envelope {code, msg, data}.

let session = null;
const listeners = new Set();

/** An answer with a non-zero `code` (or a failure to reach the server at all: code 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The signed-in user: {token, username, userId, role, expiresAt}, or null. */
export function currentSession() {
  return session;
}

export function isAdmin() {
  return session?.role === 'admin';
}

/** Calls `listener(session)` whenever the user signs in or out. */
export function onSessionChange(listener) {
  listeners.add(listener);
}

function setSession(next) {
  session = next;
  for (const listener of listeners) listener(session);
}

/** The claims of a JWT (the server checks the signature; the console only reads its role). */
function claimsOf(token) {
  const payload = token.split('.')[1] ?? '';
  const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

export async function signIn(username, password) {
  const data = await call('POST', '/v2/user/login', { json: { username, password }, auth: false });
  const claims = claimsOf(data.token);
  setSession({
    token: data.token,
    username,
    userId: data.user_id,
    role: claims.role,
    expiresAt: data.expires_at,
  });
}

export function signOut() {
  setSession(null);
}

/**
 * One call: `query` goes to the URL, `json` or `form` (a FormData) to the body. Resolves to
 * the answer's `data`; rejects with an ApiError. A token the server no longer accepts
 * (1002, 1003) ends the session.
 */
export async function call(method, path, { query, json, form, auth = true } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const headers = {};
  if (auth && session) headers.Authorization = `Bearer ${session.token}`;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  let answer;
  try {
    answer = await fetch(url, { method, headers, body, cache: 'no-store' });
  } catch (error) {
    throw new ApiError(0, 0, `The server cannot be reached (${error.message}).`);
  }
  let envelope;
  try {
    envelope = await answer.json();
  } catch {
    throw new ApiError(answer.status, 0, `HTTP ${answer.status}: not a JSON answer`);
  }
  if (envelope.code !== 0) {
    if (auth && (envelope.code === 1002 || envelope.code === 1003) && session) signOut();
    throw new ApiError(answer.status, envelope.code, `${envelope.msg} (code ${envelope.code})`);
  }
  return envelope.data;
}
