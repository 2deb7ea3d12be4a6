// hookrelay admin pages: what every page shares — sign-in with a token, the admin-role check,
// sign-out, toasts and the confirmation dialog. The token lives in sessionStorage (this tab),
// so moving between the four pages keeps you signed in.

import { api, token } from './api.js';
import { h } from './dom.js';

const $ = (id) => document.getElementById(id);

let page = null;
/** Pending delayed work (refreshes, polls), cancelled on sign-out. */
const timers = new Set();

function showView(name) {
  $('view-signin').hidden = name !== 'signin';
  $('view-forbidden').hidden = name !== 'forbidden';
  $(page.view).hidden = name !== 'page';
  $('sign-out').hidden = name !== 'page';
}

function showSignIn(message) {
  showView('signin');
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('token').focus();
}

function showForbidden() {
  token.clear();
  showView('forbidden');
  $('forbidden-signin').focus();
}

function showPage() {
  showView('page');
  page.onShow();
}

/** True while signed in with the page shown (late work checks this before it runs). */
export function active() {
  return Boolean(token.get()) && !$(page.view).hidden;
}

/** Closes every open dialog of the page. */
export function closeDialogs() {
  for (const d of document.querySelectorAll('dialog')) if (d.open) d.close();
}

/** Handles 401/403 from any call; true when it did (the caller stops). */
export function authFailure(err) {
  if (err && err.status === 401) {
    token.clear();
    closeDialogs();
    showSignIn('Your token was not accepted (it may have been revoked or mistyped). Please sign in again.');
    return true;
  }
  if (err && err.status === 403) {
    closeDialogs();
    showForbidden();
    return true;
  }
  return false;
}

async function signIn(e) {
  e.preventDefault();
  const input = $('token');
  const value = input.value.trim();
  if (!value) {
    showSignIn('Paste an API token first.');
    return;
  }
  const button = $('signin-submit');
  button.disabled = true;
  button.textContent = 'Signing in…';
  token.set(value);
  input.value = '';
  try {
    await api(page.probe);
    showPage();
  } catch (err) {
    if (err && err.status === 401) {
      token.clear();
      showSignIn('That token was not accepted. Check it and try again.');
    } else if (!authFailure(err)) {
      token.clear();
      showSignIn(`Could not sign in — ${err.message}`);
    }
  } finally {
    button.disabled = false;
    button.textContent = 'Sign in';
  }
}

/** Runs `f` after `ms` unless the user signs out first. */
export function later(ms, f) {
  const t = setTimeout(() => { timers.delete(t); if (active()) f(); }, ms);
  timers.add(t);
  return t;
}

function signOut() {
  token.clear();
  for (const t of timers) clearTimeout(t);
  timers.clear();
  closeDialogs();
  if (page.onSignOut) page.onSignOut();
  showSignIn('');
  toast('Signed out. The token was removed from this tab.');
}

/** A short message in the corner (announced to screen readers). */
export function toast(text, kind) {
  const el = h('div', { class: kind ? `toast ${kind}` : 'toast' }, text);
  $('toasts').append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 12000 : 7000);
}

/** Asks for confirmation in the page's `#confirm` dialog; resolves true on OK. */
export function confirmDialog(text, okLabel, title) {
  const dlg = $('confirm');
  if (title) $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  dlg.returnValue = '';
  dlg.showModal();
  $('confirm-cancel').focus();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
  });
}

/** The signed-in token's role (`viewer`, `admin`, `owner`), or null when it can't be read. */
export async function role() {
  try {
    const me = await api('/me');
    return (me && me.role) || null;
  } catch {
    return null;
  }
}

/**
 * Starts a page: `view` is the id of its main section, `probe` an API path the admin role may
 * read (a 403 there means the token is too weak), `onShow` renders it once signed in,
 * `onSignOut` forgets what it showed.
 */
export function startSession(options) {
  page = options;
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('forbidden-signin').addEventListener('click', () => showSignIn(''));
  if (token.get()) showPage();
  else showSignIn('');
}
