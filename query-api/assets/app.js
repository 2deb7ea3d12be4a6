// hookrelay admin page: the delivery log. Filters, sort and cursor live in the page URL (so a
// link can be shared and Back works); the token lives in sessionStorage and never in the URL.

import { api, token, query } from './api.js';
import { h, replace, localTime, sentence, statusText, pretty, copyText } from './dom.js';

const $ = (id) => document.getElementById(id);

/** Categories offered even before any attempt of theirs has been seen. */
const KNOWN_CATEGORIES = ['license', 'activation', 'product'];
const SORTS = ['attempted_at', 'status', 'response_code'];
const DEFAULTS = { q: '', category: '', status: '', sort: 'attempted_at', order: 'desc', limit: '50', cursor: '' };
/** How many attempts "Retry all failed" reads at most to count what it will send. */
const COUNT_PAGES = 25;
const COUNT_PAGE_SIZE = 200;

let state = { ...DEFAULTS };
/** Cursors of the pages before the current one ('' is the first page), for "Previous". */
let prevStack = [];
let nextCursor = null;
let inflight = null;
/** Pending delayed refreshes, cancelled on sign-out. */
const timers = new Set();
const categories = new Set(KNOWN_CATEGORIES);

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
  return Boolean(state.q || state.category || state.status);
}

// ---------------------------------------------------------------- views and auth

function showView(name) {
  $('view-signin').hidden = name !== 'signin';
  $('view-forbidden').hidden = name !== 'forbidden';
  $('view-log').hidden = name !== 'log';
  $('sign-out').hidden = name !== 'log';
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

function showLog() {
  showView('log');
  syncForm();
  load();
  discoverCategories();
}

/** Handles 401/403 from any call; true when it did (the caller stops). */
function authFailure(err) {
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
    await api('/deliveries?limit=1');
    showLog();
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

function later(ms, f) {
  const t = setTimeout(() => { timers.delete(t); f(); }, ms);
  timers.add(t);
}

function signOut() {
  token.clear();
  for (const t of timers) clearTimeout(t);
  timers.clear();
  if (inflight) inflight.abort();
  closeDialogs();
  replace($('rows'));
  setState('');
  showSignIn('');
  toast('Signed out. The token was removed from this tab.');
}

// ---------------------------------------------------------------- the table

function setState(text, kind, ...extra) {
  const el = $('state');
  el.className = kind ? `state ${kind}` : 'state';
  replace(el, text, ...extra);
}

function syncForm() {
  addCategory(state.category);
  $('f-q').value = state.q;
  $('f-category').value = state.category;
  $('f-status').value = state.status;
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
}

async function load({ quiet = false } = {}) {
  // Late refreshes (after a retry) must not run once the user signed out.
  if (!token.get() || $('view-log').hidden) return;
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
    const data = await api(`/deliveries${query({
      q: state.q, category: state.category, status: state.status,
      sort: state.sort, order: state.order, limit: state.limit, cursor: state.cursor,
    })}`, { signal: ctl.signal });
    if (ctl !== inflight) return;
    const items = Array.isArray(data && data.items) ? data.items : [];
    for (const it of items) addCategory(it.event_type);
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

function summary(n) {
  const parts = [`${n} ${n === 1 ? 'attempt' : 'attempts'} on this page`];
  if (state.q) parts.push(`matching “${state.q}”`);
  if (state.category) parts.push(`category ${state.category}`);
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

/** A table cell; its content is wrapped so the stacked (narrow) layout has label + one block. */
function cell(label, cls, ...children) {
  return h('td', { 'data-label': label, class: cls }, h('div', { class: 'cell' }, children));
}

function row(item, superseded = false) {
  const failed = item.status !== 'success';
  const wh = item.webhook || {};
  return h('tr', { dataset: { id: item.id, deliveryId: item.delivery_id, status: item.status, webhookId: wh.id || '' } },
    cell('Webhook', 'webhook',
      h('div', { class: 'wh-name' }, wh.name || '—'),
      h('div', { class: 'wh-url' }, wh.url || '')),
    cell('Event type', 'event-type', h('span', { class: 'etype' }, item.event_type)),
    cell('Status', 'status',
      badge(item.status),
      h('div', { class: 'meta' }, `attempt ${item.attempt} · ${item.trigger}`)),
    cell('Response', 'response', responseCell(item)),
    cell('Attempted at', 'attempted-at',
      h('time', { datetime: item.attempted_at, title: item.attempted_at }, localTime(item.attempted_at)),
      item.duration_ms != null ? h('div', { class: 'meta' }, `${item.duration_ms} ms`) : null),
    cell('Actions', 'actions',
      h('button', {
        type: 'button', class: 'btn small view',
        'aria-label': `View attempt ${item.attempt} of ${item.event_type} to ${wh.name || 'webhook'}`,
        onclick: (e) => openDetails(item.id, e.currentTarget),
      }, 'View'),
      failed && !superseded ? h('button', {
        type: 'button', class: 'btn small danger-outline retry',
        'aria-label': `Retry ${item.event_type} to ${wh.name || 'webhook'}`,
        onclick: (e) => retryOne(item, e.currentTarget),
      }, 'Retry') : null,
      failed && superseded ? h('div', { class: 'meta superseded' }, 'a later attempt succeeded') : null));
}

function badge(status) {
  const ok = status === 'success';
  return h('span', { class: `badge ${ok ? 'success' : 'failed'}` },
    h('span', { 'aria-hidden': 'true' }, ok ? '✓' : '✕'), ok ? 'Success' : 'Failed');
}

function responseCell(item) {
  const parts = [];
  if (item.response_code != null) {
    const good = item.response_code >= 200 && item.response_code < 300;
    parts.push(h('span', { class: `code ${good ? 'ok' : 'bad'}` }, statusText(item.response_code)));
  }
  if (item.error) parts.push(h('div', { class: 'err' }, sentence(item.error)));
  return parts.length ? parts : '—';
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

// ---------------------------------------------------------------- categories

function addCategory(typeOrCategory) {
  const c = String(typeOrCategory || '').split('.')[0].trim().toLowerCase();
  if (!c || categories.has(c)) return;
  categories.add(c);
  renderCategories();
}

function renderCategories() {
  const select = $('f-category');
  const current = select.value || state.category;
  replace(select, h('option', { value: '' }, 'All categories'),
    [...categories].sort().map((c) => h('option', { value: c }, sentence(c))));
  select.value = current;
}

/** Adds the categories of recent attempts to the filter (the API has no category list). */
async function discoverCategories() {
  try {
    const data = await api(`/deliveries${query({ limit: 200 })}`);
    for (const it of (data && data.items) || []) addCategory(it.event_type);
  } catch {
    // The fixed list and the categories of the rows shown still work.
  }
}

// ---------------------------------------------------------------- details

function closeDialogs() {
  for (const d of [$('details'), $('confirm')]) if (d.open) d.close();
}

async function openDetails(id, opener) {
  const dlg = $('details');
  const body = $('details-body');
  $('details-title').textContent = 'Delivery attempt';
  replace(body, h('p', { class: 'state' }, 'Loading…'));
  dlg.opener = opener;
  if (!dlg.open) dlg.showModal();
  try {
    const d = await api(`/deliveries/${encodeURIComponent(id)}`);
    renderDetails(d);
  } catch (err) {
    if (authFailure(err)) return;
    replace(body, h('p', { class: 'banner error', role: 'alert' }, `Could not load this attempt — ${err.message}`));
  }
}

function headerRows(headers) {
  const entries = [];
  if (Array.isArray(headers)) {
    for (const e of headers) if (Array.isArray(e)) entries.push([e[0], e[1]]);
  } else if (headers && typeof headers === 'object') {
    for (const [k, v] of Object.entries(headers)) {
      for (const one of Array.isArray(v) ? v : [v]) entries.push([k, one]);
    }
  }
  entries.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  if (!entries.length) return h('p', { class: 'hint' }, 'No headers recorded.');
  return h('table', { class: 'headers' }, h('tbody', {},
    entries.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, typeof v === 'string' ? v : JSON.stringify(v))))));
}

function bodyText(body) {
  if (body === undefined || body === null) return '';
  return typeof body === 'string' ? body : pretty(body);
}

function renderDetails(d) {
  const wh = d.webhook || {};
  const failed = d.status !== 'success';
  $('details-title').textContent = `${wh.name || 'Webhook'} · ${d.event_type}`;
  const req = d.request || {};
  const res = d.response;
  const payloadText = pretty(d.payload);
  const payloadPre = h('pre', { class: 'block', id: 'payload', tabindex: 0 }, payloadText);

  const copy = h('button', {
    type: 'button', class: 'btn small', id: 'copy-payload',
    onclick: async () => {
      const ok = await copyText(payloadText, payloadPre);
      copy.textContent = ok ? 'Copied ✓' : 'Selected — press Ctrl+C';
      setTimeout(() => { copy.textContent = 'Copy payload'; }, 2500);
    },
  }, 'Copy payload');

  const summaryList = h('dl', { class: 'summary' },
    h('dt', {}, 'Status'), h('dd', {}, badge(d.status)),
    h('dt', {}, 'Response'), h('dd', {}, responseCell(d)),
    h('dt', {}, 'Attempt'), h('dd', {}, `${d.attempt} (${d.trigger})`),
    h('dt', {}, 'Attempted at'), h('dd', {}, h('time', { datetime: d.attempted_at, title: d.attempted_at }, localTime(d.attempted_at)), ' ', h('span', { class: 'meta mono' }, d.attempted_at)),
    h('dt', {}, 'Duration'), h('dd', {}, d.duration_ms != null ? `${d.duration_ms} ms` : '—'),
    h('dt', {}, 'Webhook'), h('dd', {}, `${wh.name || '—'} `, h('span', { class: 'wh-url' }, wh.url || '')),
    h('dt', {}, 'Event'), h('dd', { class: 'mono' }, `${d.event_type} · ${d.event_id}`),
    h('dt', {}, 'Delivery'), h('dd', { class: 'mono' }, d.delivery_id),
    h('dt', {}, 'Attempt id'), h('dd', { class: 'mono' }, d.id));

  const responseSection = res
    ? [
      h('p', {}, 'Status ', h('span', { class: `code ${res.status >= 200 && res.status < 300 ? 'ok' : 'bad'}` }, statusText(res.status))),
      h('h4', {}, 'Response headers'), headerRows(res.headers),
      h('h4', {}, 'Response body'),
      bodyText(res.body)
        ? h('pre', { class: 'block', id: 'response-body', tabindex: 0 }, bodyText(res.body))
        : h('p', { class: 'hint', id: 'response-body' }, '(empty body)'),
      res.body_truncated ? h('p', { class: 'note', id: 'truncated' }, 'Truncated: only the first 64 KiB of this body was stored.') : null,
      res.headers_truncated ? h('p', { class: 'note' }, 'Headers truncated: only the first 64 headers (16 KiB) were stored.') : null,
      d.error ? h('p', { class: 'errbox' }, sentence(d.error)) : null,
    ]
    : [h('p', { class: 'errbox', id: 'no-response' }, `No response — ${sentence(d.error || 'the request failed before a response came')}`)];

  replace($('details-body'),
    summaryList,
    failed ? h('p', {}, h('button', {
      type: 'button', class: 'btn danger-outline', id: 'details-retry',
      onclick: (e) => retryOne(d, e.currentTarget),
    }, 'Retry this delivery')) : null,
    h('h3', {}, 'Request'),
    h('p', { class: 'mono', id: 'request-line' }, `${req.method || 'POST'} ${req.url || wh.url || ''}`),
    h('h4', {}, 'Request headers'), headerRows(req.headers),
    h('h3', {}, 'Payload', copy),
    payloadPre,
    h('h3', {}, 'Response'),
    responseSection);
}

// ---------------------------------------------------------------- retries

function toast(text, kind) {
  const el = h('div', { class: kind ? `toast ${kind}` : 'toast' }, text);
  $('toasts').append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 12000 : 7000);
}

/** The ids of the attempts of `item`'s delivery that exist now (to spot the new one later). */
async function attemptsOf(item) {
  const data = await api(`/deliveries${query({ webhook_id: item.webhook && item.webhook.id, limit: 200 })}`);
  return ((data && data.items) || []).filter((x) => x.delivery_id === item.delivery_id);
}

async function retryOne(item, button) {
  const name = (item.webhook && item.webhook.name) || 'webhook';
  button.disabled = true;
  button.textContent = 'Retrying…';
  let known = null;
  try {
    known = new Set((await attemptsOf(item)).map((x) => x.id));
  } catch {
    known = null; // Only the "result" toast depends on this; the retry itself goes ahead.
  }
  try {
    await api(`/deliveries/${encodeURIComponent(item.id)}/retry`, { method: 'POST' });
  } catch (err) {
    if (authFailure(err)) return;
    toast(`The retry could not be queued — ${err.message}`, 'error');
    button.disabled = false;
    button.textContent = 'Retry';
    return;
  }
  button.textContent = 'Queued ✓';
  toast(`Retry queued: ${item.event_type} to ${name}. Waiting for the result…`);
  const result = known ? await waitForNewAttempt(item, known) : null;
  if (result) {
    const ok = result.status === 'success';
    toast(`Retry ${ok ? 'succeeded' : 'failed'}: ${item.event_type} to ${name} — ${result.response_code != null ? statusText(result.response_code) : sentence(result.error || '')}`, ok ? 'ok' : 'error');
  } else {
    toast('The retry is queued; its result has not shown up yet. Refresh in a moment.');
  }
  await load({ quiet: true });
}

async function waitForNewAttempt(item, known) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 800));
    try {
      const fresh = (await attemptsOf(item)).find((x) => !known.has(x.id));
      if (fresh) return fresh;
    } catch (err) {
      if (authFailure(err)) return null;
    }
  }
  return null;
}

/**
 * Works out what "Retry all failed" will send: the deliveries matching the current search and
 * category whose latest attempt failed (counted here for the confirmation), and the one bulk
 * request with the same `q` and `category` that retries them.
 */
async function planBulk() {
  const latest = new Map();
  let cursor = '';
  let capped = false;
  for (let page = 0; page < COUNT_PAGES; page += 1) {
    const data = await api(`/deliveries${query({
      q: state.q, category: state.category, sort: 'attempted_at', order: 'desc', limit: COUNT_PAGE_SIZE, cursor,
    })}`);
    for (const it of (data && data.items) || []) {
      if (!latest.has(it.delivery_id)) latest.set(it.delivery_id, it);
    }
    cursor = (data && data.next_cursor) || '';
    if (!cursor) break;
    if (page === COUNT_PAGES - 1) capped = true;
  }
  const failed = [...latest.values()].filter((it) => it.status !== 'success');
  // One durable bulk job on the server takes the same search and category as the table.
  const filter = { status: 'failed' };
  if (state.category) filter.category = state.category;
  if (state.q) filter.q = state.q;
  return { count: failed.length, capped, bulk: [filter], single: [] };
}

function confirmDialog(text, okLabel) {
  const dlg = $('confirm');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  dlg.returnValue = '';
  dlg.showModal();
  $('confirm-cancel').focus();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
  });
}

async function retryAll() {
  const button = $('retry-all');
  button.disabled = true;
  button.textContent = 'Counting…';
  try {
    let plan;
    try {
      plan = await planBulk();
    } catch (err) {
      if (!authFailure(err)) toast(`Could not count the failed deliveries — ${err.message}`, 'error');
      return;
    }
    if (plan.count === 0) {
      toast('No failed deliveries match the current filters: nothing to retry.');
      return;
    }
    const n = `${plan.count}${plan.capped ? '+' : ''}`;
    const scope = [state.q && `matching “${state.q}”`, state.category && `in category ${state.category}`].filter(Boolean).join(' ');
    const ok = await confirmDialog(
      `${n} failed ${plan.count === 1 ? 'delivery' : 'deliveries'}${scope ? ` ${scope}` : ''} will be sent again now, each once, to its webhook.`,
      `Retry ${n}`);
    if (!ok) return;
    let queued = 0;
    let skipped = 0;
    for (const filter of plan.bulk) {
      const r = await api('/deliveries/retry', { method: 'POST', body: filter });
      queued += Number((r && r.queued) || 0);
      skipped += Number((r && r.skipped_disabled) || 0);
    }
    for (const it of plan.single) {
      await api(`/deliveries/${encodeURIComponent(it.id)}/retry`, { method: 'POST' });
      queued += 1;
    }
    const skippedNote = skipped ? ` ${skipped} skipped: their webhook is disabled.` : '';
    toast(`${queued} ${queued === 1 ? 'retry' : 'retries'} queued.${skippedNote} The table refreshes as results come in.`, 'ok');
    for (const delay of [1500, 3000, 5000, 8000, 12000, 17000, 23000, 30000]) later(delay, () => load({ quiet: true }));
  } catch (err) {
    if (!authFailure(err)) toast(`Retry all failed — ${err.message}`, 'error');
  } finally {
    button.disabled = false;
    button.textContent = 'Retry all failed…';
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('forbidden-signin').addEventListener('click', () => showSignIn(''));
  $('filters').addEventListener('submit', (e) => {
    e.preventDefault();
    go({ ...state, q: $('f-q').value.trim(), category: $('f-category').value, status: $('f-status').value, cursor: '' }, []);
  });
  for (const id of ['f-category', 'f-status']) {
    $(id).addEventListener('change', () => $('filters').requestSubmit());
  }
  $('clear').addEventListener('click', clearFilters);
  $('refresh').addEventListener('click', () => load());
  $('retry-all').addEventListener('click', retryAll);
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
    if (token.get()) {
      syncForm();
      load();
    }
  });
}

function boot() {
  wire();
  renderCategories();
  state = readUrl();
  prevStack = history.state && Array.isArray(history.state.prev) ? history.state.prev : [];
  history.replaceState({ prev: prevStack }, '', urlFor(state));
  if (token.get()) showLog();
  else showSignIn('');
}

boot();
