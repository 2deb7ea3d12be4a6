// hookrelay admin pages: the delivery log. Filters, sort and cursor live in the page URL (so a
// link can be shared and Back works); the token lives in sessionStorage and never in the URL.

import { api, query } from './api.js';
import { h, replace, localTime, sentence } from './dom.js';
import { badge, cell, duration, responseCell, webhookHref } from './cells.js';
import { openDetails } from './details.js';
import { retryAll, retryOne } from './retry.js';
import { active, authFailure, later, startSession } from './session.js';
import { clearFieldErrors, fieldError, fromLocalInput, toLocalInput } from './forms.js';

const $ = (id) => document.getElementById(id);

const SORTS = ['attempted_at', 'status', 'response_code'];
const DEFAULTS = {
  q: '', category: '', event_type: '', status: '', response_code: '', since: '', until: '',
  webhook_id: '', sort: 'attempted_at', order: 'desc', limit: '50', cursor: '',
};
const FILTER_KEYS = ['q', 'category', 'event_type', 'status', 'response_code', 'since', 'until', 'webhook_id'];
/** How often the auto-refresh reloads the table. */
const AUTO_REFRESH_MS = 5000;

let state = { ...DEFAULTS };
/** Cursors of the pages before the current one ('' is the first page), for "Previous". */
let prevStack = [];
let nextCursor = null;
let inflight = null;
let autoTimer = null;
const categories = new Set();
const eventTypes = new Set();

// ---------------------------------------------------------------- URL state

function readUrl() {
  const p = new URLSearchParams(location.search);
  const s = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS)) {
    const v = p.get(k);
    if (v !== null) s[k] = v;
  }
  if (!SORTS.includes(s.sort)) s.sort = DEFAULTS.sort;
  if (s.order !== 'asc' && s.order !== 'desc') s.order = DEFAULTS.order;
  if (!['', 'success', 'failed'].includes(s.status)) s.status = '';
  const n = Number(s.limit);
  if (!Number.isInteger(n) || n < 1 || n > 200) s.limit = DEFAULTS.limit;
  return s;
}

function urlFor(s) {
  const p = {};
  for (const [k, v] of Object.entries(s)) if (v !== DEFAULTS[k]) p[k] = v;
  return location.pathname + query(p);
}

/** Moves to a new list state as a new history entry, then loads it. */
function go(next, prev = []) {
  state = next;
  prevStack = prev;
  history.pushState({ prev }, '', urlFor(state));
  syncForm();
  load();
}

function hasFilters() {
  return FILTER_KEYS.some((k) => Boolean(state[k]));
}

// ---------------------------------------------------------------- the table

function setState(text, kind, ...extra) {
  const el = $('state');
  el.className = kind ? `state ${kind}` : 'state';
  replace(el, text, ...extra);
}

function syncForm() {
  addType(state.event_type);
  addCategory(state.category);
  $('f-q').value = state.q;
  $('f-category').value = state.category;
  $('f-event-type').value = state.event_type;
  $('f-status').value = state.status;
  $('f-code').value = state.response_code;
  $('f-since').value = toLocalInput(state.since);
  $('f-until').value = toLocalInput(state.until);
  const sizes = $('page-size');
  if (![...sizes.options].some((o) => o.value === state.limit)) {
    sizes.append(h('option', { value: state.limit }, state.limit));
  }
  sizes.value = state.limit;
  for (const th of document.querySelectorAll('th[data-sort]')) {
    const key = th.dataset.sort;
    const dir = key === state.sort ? (state.order === 'asc' ? 'ascending' : 'descending') : 'none';
    th.setAttribute('aria-sort', dir);
    const label = th.querySelector('button').firstChild.textContent.trim();
    th.querySelector('button').title = dir === 'none'
      ? `Sort by ${label.toLowerCase()}`
      : `Sorted by ${label.toLowerCase()}, ${dir}; click to reverse`;
  }
  showWebhookChip();
}

/** The "Webhook: name ✕" chip when the log is narrowed to one webhook (from its page). */
async function showWebhookChip() {
  const chip = $('webhook-chip');
  const id = state.webhook_id;
  chip.hidden = !id;
  if (!id) return;
  const w = await webhookHealth(id);
  if (state.webhook_id !== id) return;
  replace($('webhook-chip-name'), w ? w.name : id);
}

async function load({ quiet = false } = {}) {
  // Late refreshes (after a retry, auto-refresh) must not run once the user signed out.
  if (!active()) return;
  if (inflight) inflight.abort();
  const ctl = new AbortController();
  inflight = ctl;
  const tbody = $('rows');
  if (!quiet) {
    setState('Loading deliveries…');
    tbody.classList.add('loading');
    $('log').setAttribute('aria-busy', 'true');
  }
  updatePager(null, true);
  try {
    const params = { sort: state.sort, order: state.order, limit: state.limit, cursor: state.cursor };
    for (const k of FILTER_KEYS) params[k] = state[k];
    const data = await api(`/deliveries${query(params)}`, { signal: ctl.signal });
    if (ctl !== inflight) return;
    const items = Array.isArray(data && data.items) ? data.items : [];
    for (const it of items) addType(it.event_type);
    renderRows(items);
    updatePager((data && data.next_cursor) || null);
    setState(summary(items.length));
  } catch (err) {
    if (err && err.name === 'AbortError') return;
    if (authFailure(err)) return;
    replace(tbody, h('tr', {}, h('td', { colspan: 6, class: 'empty' },
      h('p', { class: 'err' }, `Could not load deliveries — ${err.message}`),
      h('button', { type: 'button', class: 'btn', onclick: () => load() }, 'Try again'))));
    setState(`Could not load deliveries — ${err.message}`, 'error');
  } finally {
    if (ctl === inflight) {
      tbody.classList.remove('loading');
      $('log').removeAttribute('aria-busy');
      inflight = null;
    }
  }
}

/** The current filters in words (the summary line and the bulk-retry confirmation). */
function describe() {
  const parts = [];
  if (state.q) parts.push(`matching “${state.q}”`);
  if (state.category) parts.push(`category ${state.category}`);
  if (state.event_type) parts.push(`type ${state.event_type}`);
  if (state.webhook_id) parts.push(`webhook ${$('webhook-chip-name').textContent || state.webhook_id}`);
  if (state.since) parts.push(`since ${localTime(state.since)}`);
  if (state.until) parts.push(`until ${localTime(state.until)}`);
  return parts.join(', ');
}

function summary(n) {
  const parts = [`${n} ${n === 1 ? 'attempt' : 'attempts'} on this page`];
  const d = describe();
  if (d) parts.push(d);
  if (state.response_code) parts.push(`response ${state.response_code}`);
  if (state.status) parts.push(state.status === 'failed' ? 'failed only' : 'successful only');
  return parts.join(' · ');
}

function renderRows(items) {
  const tbody = $('rows');
  if (items.length === 0) {
    const filtered = hasFilters() || state.cursor;
    replace(tbody, h('tr', { class: 'empty-row' }, h('td', { colspan: 6, class: 'empty' },
      h('p', {}, filtered ? 'No delivery attempts match these filters.' : 'No deliveries yet.'),
      filtered
        ? h('button', { type: 'button', class: 'btn', onclick: clearFilters }, 'Clear filters')
        : h('p', { class: 'hint' }, 'Attempts show up here as soon as events are sent to webhooks.'))));
    return;
  }
  // A failed row whose delivery already has a newer success on this page needs no retry.
  const succeededAt = new Map();
  for (const it of items) {
    if (it.status !== 'success') continue;
    const t = Date.parse(it.attempted_at);
    if (!(succeededAt.get(it.delivery_id) >= t)) succeededAt.set(it.delivery_id, t);
  }
  replace(tbody, items.map((it) => row(it, succeededAt.get(it.delivery_id) > Date.parse(it.attempted_at))));
  showHealth(items);
}

/** Webhook health (circuit, auto-disable) by id, kept for 10 s so paging costs no requests. */
const healthCache = new Map();

async function webhookHealth(id) {
  const hit = healthCache.get(id);
  if (hit && Date.now() - hit.at < 10000) return hit.value;
  let value = null;
  try { value = await api(`/webhooks/${encodeURIComponent(id)}`); } catch { value = null; }
  healthCache.set(id, { at: Date.now(), value });
  return value;
}

/** What a row says about its webhook's state: nothing while it is enabled and its circuit closed. */
function healthNote(w) {
  if (!w) return null;
  if (!w.enabled) {
    const why = { failing: 'every attempt failed for too long', gone: 'the endpoint answered 410 Gone', manual: 'by an admin' };
    return h('div', { class: 'wh-health bad', title: w.disabled_at || '' },
      `Disabled: ${why[w.disabled_reason] || 'disabled'}`);
  }
  const c = w.health;
  if (!c || !c.circuit || c.circuit === 'closed') return null;
  const until = c.open_until ? ` until ${localTime(c.open_until)}` : '';
  const label = c.circuit === 'open' ? `Circuit open${until}: deliveries deferred` : 'Circuit half-open: probing';
  return h('div', { class: 'wh-health warn', title: c.last_error || '' },
    `${label} (${c.consecutive_failures} consecutive failures)`);
}

async function showHealth(items) {
  const ids = [...new Set(items.map((it) => it.webhook && it.webhook.id).filter(Boolean))];
  await Promise.all(ids.map(async (id) => {
    const note = healthNote(await webhookHealth(id));
    if (!note) return;
    for (const tr of document.querySelectorAll(`#rows tr[data-webhook-id="${CSS.escape(id)}"]`)) {
      const cellDiv = tr.querySelector('td.webhook .cell');
      if (cellDiv && !cellDiv.querySelector('.wh-health')) cellDiv.append(note.cloneNode(true));
    }
  }));
}

function row(item, superseded = false) {
  const failed = item.status !== 'success';
  const wh = item.webhook || {};
  const reload = () => load({ quiet: true });
  return h('tr', { dataset: { id: item.id, deliveryId: item.delivery_id, status: item.status, webhookId: wh.id || '' } },
    cell('Webhook', 'webhook',
      wh.id
        ? h('a', { class: 'wh-name', href: webhookHref(wh.id), title: `Open the webhook ${wh.name || ''}` }, wh.name || '—')
        : h('div', { class: 'wh-name' }, wh.name || '—'),
      h('div', { class: 'wh-url' }, wh.url || '')),
    cell('Event type', 'event-type', h('span', { class: 'etype' }, item.event_type)),
    cell('Status', 'status',
      badge(item.status),
      h('div', { class: 'meta' }, `attempt ${item.attempt} · ${item.trigger}`)),
    cell('Response', 'response', responseCell(item),
      h('div', { class: 'meta duration', title: 'Response time' }, `in ${duration(item.duration_ms)}`)),
    cell('Attempted at', 'attempted-at',
      h('time', { datetime: item.attempted_at, title: item.attempted_at }, localTime(item.attempted_at))),
    cell('Actions', 'actions',
      h('button', {
        type: 'button', class: 'btn small view',
        'aria-label': `View attempt ${item.attempt} of ${item.event_type} to ${wh.name || 'webhook'}`,
        onclick: (e) => openDetails(item.id, e.currentTarget, (d, b) => retryOne(d, b, reload)),
      }, 'View'),
      failed && !superseded ? h('button', {
        type: 'button', class: 'btn small danger-outline retry',
        'aria-label': `Retry ${item.event_type} to ${wh.name || 'webhook'}`,
        onclick: (e) => retryOne(item, e.currentTarget, reload),
      }, 'Retry') : null,
      failed && superseded ? h('div', { class: 'meta superseded' }, 'a later attempt succeeded') : null));
}

function updatePager(next, busy = false) {
  if (!busy) nextCursor = next;
  $('prev').disabled = busy || !state.cursor;
  $('next').disabled = busy || !nextCursor;
  const label = !state.cursor ? 'Page 1' : prevStack.length ? `Page ${prevStack.length + 1}` : 'A later page';
  $('page-label').textContent = label;
}

function clearFilters() {
  go({ ...DEFAULTS, sort: state.sort, order: state.order, limit: state.limit }, []);
}

// ---------------------------------------------------------------- pickers

function addCategory(c) {
  const v = String(c || '').trim().toLowerCase();
  if (!v || categories.has(v)) return;
  categories.add(v);
  renderOptions($('f-category'), categories, 'All categories', state.category, sentence);
}

function addType(t) {
  const v = String(t || '').trim();
  if (!v) return;
  addCategory(v.split('.')[0]);
  if (eventTypes.has(v)) return;
  eventTypes.add(v);
  renderOptions($('f-event-type'), eventTypes, 'All event types', state.event_type, (x) => x);
}

function renderOptions(select, values, allLabel, wanted, label) {
  const current = select.value || wanted;
  replace(select, h('option', { value: '' }, allLabel),
    [...values].sort().map((v) => h('option', { value: v }, label(v))));
  select.value = current;
}

/** Fills the category and event-type pickers from `GET /api/v1/event-types` (no fixed list). */
async function loadEventTypes() {
  try {
    const data = await api('/event-types');
    for (const it of (data && data.items) || []) addType(it.type);
  } catch (err) {
    authFailure(err); // Otherwise the types of the rows shown still fill the pickers.
  }
}

// ---------------------------------------------------------------- auto-refresh

function setAutoRefresh(on) {
  if (autoTimer) clearTimeout(autoTimer);
  autoTimer = null;
  $('auto-refresh').checked = on;
  if (on) tick();
}

function tick() {
  autoTimer = later(AUTO_REFRESH_MS, () => {
    // A dialog open or a request on its way: skip this round, not the next.
    if (!document.querySelector('dialog[open]') && !inflight) load({ quiet: true });
    if ($('auto-refresh').checked) tick();
  });
}

// ---------------------------------------------------------------- wiring

function applyFilters(e) {
  e.preventDefault();
  clearFieldErrors($('filters'));
  const code = $('f-code').value.trim();
  if (code && !/^[1-5][0-9]{2}$/.test(code)) {
    fieldError($('f-code'), 'A response code is a number from 100 to 599.');
    return;
  }
  const since = fromLocalInput($('f-since').value);
  const until = fromLocalInput($('f-until').value);
  if (since && until && since >= until) {
    fieldError($('f-until'), '“Until” must be after “Since”.');
    return;
  }
  go({
    ...state,
    q: $('f-q').value.trim(),
    category: $('f-category').value,
    event_type: $('f-event-type').value,
    status: $('f-status').value,
    response_code: code,
    since,
    until,
    cursor: '',
  }, []);
}

function wire() {
  $('filters').addEventListener('submit', applyFilters);
  for (const id of ['f-category', 'f-event-type', 'f-status']) {
    $(id).addEventListener('change', () => $('filters').requestSubmit());
  }
  $('clear').addEventListener('click', clearFilters);
  $('refresh').addEventListener('click', () => load());
  $('auto-refresh').addEventListener('change', (e) => setAutoRefresh(e.target.checked));
  $('webhook-chip-clear').addEventListener('click', () => go({ ...state, webhook_id: '', cursor: '' }, []));
  $('retry-all').addEventListener('click', () => retryAll(state, describe, () => load({ quiet: true })));
  $('page-size').addEventListener('change', (e) => go({ ...state, limit: e.target.value, cursor: '' }, []));
  $('prev').addEventListener('click', () => {
    const prev = [...prevStack];
    const cursor = prev.length ? prev.pop() : '';
    go({ ...state, cursor }, prev);
  });
  $('next').addEventListener('click', () => {
    if (nextCursor) go({ ...state, cursor: nextCursor }, [...prevStack, state.cursor]);
  });
  for (const th of document.querySelectorAll('th[data-sort]')) {
    th.querySelector('button').addEventListener('click', () => {
      const key = th.dataset.sort;
      const order = key === state.sort ? (state.order === 'desc' ? 'asc' : 'desc') : 'desc';
      go({ ...state, sort: key, order, cursor: '' }, []);
    });
  }
  $('details-close').addEventListener('click', () => $('details').close());
  $('details').addEventListener('close', () => {
    const opener = $('details').opener;
    if (opener && opener.isConnected) opener.focus();
  });
  window.addEventListener('popstate', (e) => {
    state = readUrl();
    prevStack = e.state && Array.isArray(e.state.prev) ? e.state.prev : [];
    if (active()) {
      syncForm();
      load();
    }
  });
}

function boot() {
  wire();
  state = readUrl();
  prevStack = history.state && Array.isArray(history.state.prev) ? history.state.prev : [];
  history.replaceState({ prev: prevStack }, '', urlFor(state));
  startSession({
    view: 'view-log',
    probe: '/deliveries?limit=1',
    onShow: () => {
      syncForm();
      load();
      loadEventTypes();
    },
    onSignOut: () => {
      setAutoRefresh(false);
      if (inflight) inflight.abort();
      replace($('rows'));
      setState('');
    },
  });
}

boot();
