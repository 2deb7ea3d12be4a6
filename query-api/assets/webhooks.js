// hookrelay admin pages: the webhooks — the list with each one's health, create (the secret
// shown once), edit, rotate the secret, delete, send a test event, and a link to its deliveries.

import { api, query } from './api.js';
import { h, replace, copyText } from './dom.js';
import { cell } from './cells.js';
import { active, authFailure, closeDialogs, confirmDialog, startSession, toast } from './session.js';
import { current, fill, read, setKnownTypes, showServerError, wireEditor } from './webhook-form.js';
import { healthCell, sendTest } from './webhook-health.js';

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 100;

let webhooks = [];
let nextCursor = null;

function setState(text, kind) {
  const el = $('state');
  el.className = kind ? `state ${kind}` : 'state';
  el.textContent = text;
}

async function load({ more = false } = {}) {
  if (!active()) return;
  if (!more) setState('Loading webhooks…');
  $('webhooks').setAttribute('aria-busy', 'true');
  try {
    const data = await api(`/webhooks${query({ limit: PAGE_SIZE, cursor: more ? nextCursor : '' })}`);
    const items = Array.isArray(data && data.items) ? data.items : [];
    webhooks = more ? [...webhooks, ...items] : items;
    nextCursor = (data && data.next_cursor) || null;
    render();
    setState(webhooks.length
      ? `${webhooks.length} ${webhooks.length === 1 ? 'webhook' : 'webhooks'}${nextCursor ? ' (more below)' : ''}`
      : '');
    openFromUrl();
  } catch (err) {
    if (authFailure(err)) return;
    setState(`Could not load the webhooks — ${err.message}`, 'error');
  } finally {
    $('webhooks').removeAttribute('aria-busy');
  }
}

function render() {
  $('more').hidden = !nextCursor;
  if (!webhooks.length) {
    replace($('rows'), h('tr', { class: 'empty-row' }, h('td', { colspan: 5, class: 'empty' },
      h('p', {}, 'No webhooks yet.'),
      h('button', { type: 'button', class: 'btn primary', onclick: () => openEditor(null) }, '+ Create the first one'))));
    return;
  }
  replace($('rows'), webhooks.map(row));
}

function statusCell(w) {
  if (w.enabled) return h('span', { class: 'badge success' }, h('span', { 'aria-hidden': 'true' }, '●'), 'Enabled');
  const why = { failing: 'every attempt failed for too long', gone: 'the endpoint answered 410 Gone', manual: 'by an admin' };
  return [h('span', { class: 'badge failed' }, h('span', { 'aria-hidden': 'true' }, '○'), 'Disabled'),
    h('div', { class: 'meta' }, why[w.disabled_reason] || '')];
}

function row(w) {
  const label = w.name || 'webhook';
  return h('tr', { dataset: { id: w.id } },
    cell('Webhook', 'webhook',
      h('div', { class: 'wh-name' }, w.name),
      h('div', { class: 'wh-url' }, w.url),
      h('div', { class: 'meta' }, `signature ${w.signature_scheme || 'v1'} · max ${w.max_in_flight} in flight${w.rate_limit != null ? ` · ${w.rate_limit}/s` : ''}`)),
    cell('Event types', 'event-types', h('span', { class: 'etype' }, (w.event_types || []).join(', '))),
    cell('Status', 'status', statusCell(w)),
    cell('Health (24 h)', 'health', healthCell(w)),
    cell('Actions', 'actions',
      h('a', { class: 'btn small deliveries', href: `/admin/webhook-deliveries?webhook_id=${encodeURIComponent(w.id)}`, 'aria-label': `Deliveries of ${label}` }, 'Deliveries'),
      h('button', { type: 'button', class: 'btn small test', 'aria-label': `Send a test event to ${label}`, onclick: (e) => sendTest(w, e.currentTarget) }, 'Send test'),
      h('button', { type: 'button', class: 'btn small edit', 'aria-label': `Edit ${label}`, onclick: (e) => openEditor(w, e.currentTarget) }, 'Edit'),
      h('button', { type: 'button', class: 'btn small rotate', 'aria-label': `Rotate the secret of ${label}`, onclick: (e) => rotate(w, e.currentTarget) }, 'Rotate secret'),
      h('button', { type: 'button', class: 'btn small danger-outline delete', 'aria-label': `Delete ${label}`, onclick: (e) => remove(w, e.currentTarget) }, 'Delete')));
}

// ---------------------------------------------------------------- the editor

async function openEditor(w, opener) {
  try {
    const data = await api('/event-types');
    setKnownTypes(((data && data.items) || []).map((t) => t.type));
  } catch (err) {
    if (authFailure(err)) return;
    setKnownTypes([]);
  }
  // The list's copy may be older than the webhook: edit what the API has now.
  let fresh = w;
  if (w) {
    try { fresh = await api(`/webhooks/${encodeURIComponent(w.id)}`); } catch (err) {
      if (authFailure(err)) return;
    }
  }
  fill(fresh);
  const dlg = $('editor');
  dlg.opener = opener || document.activeElement;
  dlg.showModal();
  $('w-name').focus();
}

async function save(e) {
  e.preventDefault();
  const body = read();
  if (!body) return;
  const w = current();
  const button = $('editor-save');
  button.disabled = true;
  try {
    if (w) {
      if (!Object.keys(body).length) {
        $('editor').close();
        toast('Nothing changed.');
        return;
      }
      const out = await api(`/webhooks/${encodeURIComponent(w.id)}`, { method: 'PATCH', body });
      $('editor').close();
      toast(`Saved ${out.name}.`, 'ok');
      if (out.secret) showSecret(out, 'A new v1 secret was made for the new signature scheme');
    } else {
      const out = await api('/webhooks', { method: 'POST', body });
      $('editor').close();
      toast(`Created ${out.name}.`, 'ok');
      showSecret(out, `${out.name} is created`);
    }
    await load();
  } catch (err) {
    if (authFailure(err)) return;
    showServerError(err);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- the secret, shown once

function showSecret(w, heading) {
  $('secret-title').textContent = `${heading}: its signing secret`;
  const secret = w.secret || '';
  $('secret-value').textContent = secret || '(this scheme signs with ed25519: no shared secret)';
  $('copy-secret').hidden = !secret;
  $('copy-secret').textContent = 'Copy secret';
  $('public-key-box').hidden = !w.public_key;
  $('public-key').textContent = w.public_key || '';
  $('secret-dialog').showModal();
  (secret ? $('copy-secret') : $('secret-done')).focus();
}

async function copySecret() {
  const ok = await copyText($('secret-value').textContent, $('secret-value'));
  $('copy-secret').textContent = ok ? 'Copied ✓' : 'Selected — press Ctrl+C';
}

function closeSecret() {
  // Forget it: the dialog is the only place it was shown.
  $('secret-value').textContent = '';
  $('secret-dialog').close();
}

// ---------------------------------------------------------------- rotate, delete

async function rotate(w, button) {
  const ok = await confirmDialog(
    `A new secret for ${w.name} is made now and shown once. The current one keeps signing beside it for 24 hours, so the endpoint can switch over.`,
    'Rotate secret', 'Rotate the signing secret?');
  if (!ok) { button.focus(); return; }
  try {
    const out = await api(`/webhooks/${encodeURIComponent(w.id)}/rotate-secret`, { method: 'POST', body: {} });
    showSecret({ ...w, ...out }, `${w.name}'s secret is rotated`);
    await load();
  } catch (err) {
    if (!authFailure(err)) toast(`The secret could not be rotated — ${err.message}`, 'error');
  }
}

async function remove(w, button) {
  const ok = await confirmDialog(
    `${w.name} (${w.url}) is deleted: it gets no more events, and its pending retries are dropped. Its past attempts stay in the log until retention removes them.`,
    `Delete ${w.name}`, 'Delete this webhook?');
  if (!ok) { button.focus(); return; }
  try {
    await api(`/webhooks/${encodeURIComponent(w.id)}`, { method: 'DELETE' });
    toast(`Deleted ${w.name}.`, 'ok');
    await load();
    $('new-webhook').focus();
  } catch (err) {
    if (!authFailure(err)) toast(`Could not delete ${w.name} — ${err.message}`, 'error');
  }
}

// ---------------------------------------------------------------- wiring

/** `?id=…` (a link from the delivery log): opens that webhook's editor once. */
function openFromUrl() {
  const id = new URLSearchParams(location.search).get('id');
  if (!id) return;
  history.replaceState(null, '', location.pathname);
  const w = webhooks.find((x) => x.id === id);
  if (w) {
    const tr = document.querySelector(`#rows tr[data-id="${CSS.escape(id)}"]`);
    if (tr) tr.classList.add('highlight');
    openEditor(w, tr && tr.querySelector('button.edit'));
  } else {
    toast('That webhook no longer exists (or is further down the list).', 'error');
  }
}

function wire() {
  wireEditor();
  $('new-webhook').addEventListener('click', (e) => openEditor(null, e.currentTarget));
  $('more').addEventListener('click', () => load({ more: true }));
  $('refresh').addEventListener('click', () => load());
  $('editor-form').addEventListener('submit', save);
  for (const id of ['editor-close', 'editor-cancel']) $(id).addEventListener('click', () => $('editor').close());
  $('editor').addEventListener('close', () => {
    const opener = $('editor').opener;
    if (opener && opener.isConnected) opener.focus();
  });
  $('copy-secret').addEventListener('click', copySecret);
  for (const id of ['secret-close', 'secret-done']) $(id).addEventListener('click', closeSecret);
  $('secret-dialog').addEventListener('cancel', () => { $('secret-value').textContent = ''; });
}

wire();
startSession({
  view: 'view-webhooks',
  probe: '/webhooks?limit=1',
  onShow: () => load(),
  onSignOut: () => {
    closeDialogs();
    webhooks = [];
    replace($('rows'));
    setState('');
  },
});
