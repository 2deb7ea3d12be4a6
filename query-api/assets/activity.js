// hookrelay admin pages: the activity log — who (a token's name, `cli` or `system`) did what,
// newest first, filtered by kind and webhook (kept in the URL), with "Load more" on the cursor.

import { api, query } from './api.js';
import { h, replace, localTime, pretty } from './dom.js';
import { cell, webhookHref } from './cells.js';
import { active, authFailure, startSession } from './session.js';

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 50;

/** The kinds the API writes (docs/portal.md), with the label shown. */
const KINDS = [
  ['webhook.*', 'Any webhook change'],
  ['webhook.created', 'Webhook created'], ['webhook.updated', 'Webhook updated'],
  ['webhook.enabled', 'Webhook enabled'], ['webhook.disabled', 'Webhook disabled'],
  ['webhook.deleted', 'Webhook deleted'], ['webhook.secret_rotated', 'Secret rotated'],
  ['webhook.auto_disabled', 'Webhook auto-disabled'], ['webhook.tested', 'Test event sent'],
  ['circuit.*', 'Circuit opened or closed'], ['circuit.opened', 'Circuit opened'], ['circuit.closed', 'Circuit closed'],
  ['delivery.retried', 'Delivery retried'],
  ['bulk_retry.*', 'Any bulk retry'], ['bulk_retry.requested', 'Bulk retry requested'], ['bulk_retry.finished', 'Bulk retry finished'],
  ['settings.changed', 'Settings changed'],
  ['token.*', 'Any token change'], ['token.created', 'Token created'], ['token.revoked', 'Token revoked'],
  ['retention.run', 'Retention run'],
];
const LABELS = new Map(KINDS);

let filters = { kind: '', webhook_id: '' };
let items = [];
let nextCursor = null;
let inflight = null;
const names = new Map();

function readUrl() {
  const p = new URLSearchParams(location.search);
  return { kind: p.get('kind') || '', webhook_id: p.get('webhook_id') || '' };
}

function setState(text, kind) {
  const el = $('state');
  el.className = kind ? `state ${kind}` : 'state';
  el.textContent = text;
}

function syncForm() {
  const kind = $('a-kind');
  if (filters.kind && ![...kind.options].some((o) => o.value === filters.kind)) {
    kind.append(h('option', { value: filters.kind }, filters.kind));
  }
  kind.value = filters.kind;
  const wh = $('a-webhook');
  if (filters.webhook_id && ![...wh.options].some((o) => o.value === filters.webhook_id)) {
    wh.append(h('option', { value: filters.webhook_id }, names.get(filters.webhook_id) || filters.webhook_id));
  }
  wh.value = filters.webhook_id;
}

async function loadWebhooks() {
  try {
    const data = await api('/webhooks?limit=200');
    for (const w of (data && data.items) || []) names.set(w.id, w.name);
  } catch (err) {
    if (authFailure(err)) return;
  }
  replace($('a-webhook'), h('option', { value: '' }, 'Every webhook'),
    [...names].sort((a, b) => a[1].localeCompare(b[1])).map(([id, name]) => h('option', { value: id }, name)));
  syncForm();
  if (items.length) render();
}

async function load({ more = false } = {}) {
  if (!active()) return;
  if (inflight) inflight.abort();
  const ctl = new AbortController();
  inflight = ctl;
  $('activity').setAttribute('aria-busy', 'true');
  if (!more) setState('Loading activity…');
  try {
    const data = await api(`/activity${query({ ...filters, limit: PAGE_SIZE, cursor: more ? nextCursor : '' })}`, { signal: ctl.signal });
    if (ctl !== inflight) return;
    const page = Array.isArray(data && data.items) ? data.items : [];
    items = more ? [...items, ...page] : page;
    nextCursor = (data && data.next_cursor) || null;
    render();
    setState(`${items.length} ${items.length === 1 ? 'entry' : 'entries'}${nextCursor ? ', more below' : ''}`);
  } catch (err) {
    if (err && err.name === 'AbortError') return;
    if (!authFailure(err)) setState(`Could not load the activity — ${err.message}`, 'error');
  } finally {
    if (ctl === inflight) {
      inflight = null;
      $('activity').removeAttribute('aria-busy');
    }
  }
}

/** A short reading of an entry's details; the whole JSON is one click away. */
function detailsCell(e) {
  const d = e.details || {};
  const parts = [];
  if (e.kind === 'settings.changed' && d.before && d.after) {
    for (const k of Object.keys(d.after)) {
      const a = JSON.stringify(d.before[k]);
      const b = JSON.stringify(d.after[k]);
      if (a !== b) parts.push(h('div', { class: 'change' }, `${k}: ${a} → ${b}`));
    }
  } else if (Array.isArray(d.fields)) {
    parts.push(h('div', {}, `changed: ${d.fields.join(', ')}`));
  } else if (d.rows_purged) {
    const r = d.rows_purged;
    parts.push(h('div', {}, `purged ${Object.entries(r).map(([k, v]) => `${v} ${k}`).join(', ')}`));
  }
  const json = pretty(d);
  if (json && json !== '{}') {
    parts.push(h('details', {}, h('summary', {}, 'All details'), h('pre', { class: 'inline-json' }, json)));
  }
  return parts.length ? parts : '—';
}

function row(e) {
  const wid = e.webhook_id;
  return h('tr', { dataset: { id: e.id, kind: e.kind } },
    cell('When', 'at', h('time', { datetime: e.at, title: e.at }, localTime(e.at))),
    cell('Who', 'actor', h('span', { class: e.actor === 'system' ? 'meta' : '' }, e.actor)),
    cell('What', 'kind', h('div', {}, LABELS.get(e.kind) || e.kind), h('div', { class: 'meta etype' }, e.kind)),
    cell('Webhook', 'webhook', wid ? h('a', { href: webhookHref(wid) }, names.get(wid) || wid) : '—'),
    cell('Details', 'details', detailsCell(e)));
}

function render() {
  $('more').hidden = !nextCursor;
  if (!items.length) {
    replace($('rows'), h('tr', { class: 'empty-row' }, h('td', { colspan: 5, class: 'empty' },
      filters.kind || filters.webhook_id ? 'No activity matches these filters.' : 'Nothing has happened yet.')));
    return;
  }
  replace($('rows'), items.map(row));
}

function go(next) {
  filters = next;
  history.pushState(null, '', location.pathname + query(filters));
  syncForm();
  load();
}

$('a-kind').append(...KINDS.map(([v, label]) => h('option', { value: v }, label)));
$('filters').addEventListener('submit', (e) => {
  e.preventDefault();
  go({ kind: $('a-kind').value, webhook_id: $('a-webhook').value });
});
for (const id of ['a-kind', 'a-webhook']) $(id).addEventListener('change', () => $('filters').requestSubmit());
$('clear').addEventListener('click', () => go({ kind: '', webhook_id: '' }));
$('refresh').addEventListener('click', () => load());
$('more').addEventListener('click', () => load({ more: true }));
window.addEventListener('popstate', () => {
  filters = readUrl();
  if (active()) { syncForm(); load(); }
});
filters = readUrl();
startSession({
  view: 'view-activity',
  probe: '/activity?limit=1',
  onShow: () => { syncForm(); load(); loadWebhooks(); },
  onSignOut: () => { items = []; replace($('rows')); setState(''); },
});
