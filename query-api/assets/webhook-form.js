// hookrelay admin pages: the webhook editor (create and edit) — filling it from a webhook,
// reading and checking it, and turning it into the API's body. The server checks everything
// again; its 422 names the field, which is then marked here.

import { h, replace } from './dom.js';
import { clearFieldErrors, fieldError, isDuration } from './forms.js';

const $ = (id) => document.getElementById(id);

/** Which input a server error about `field` belongs to (`detail` starts with the field name). */
const FIELD_INPUTS = {
  name: 'w-name', url: 'w-url', event_types: 'w-patterns', retry_policy: 'w-retry-kind',
  max_in_flight: 'w-max-in-flight', rate_limit: 'w-rate-limit', filter: 'w-filter',
  headers: 'w-headers', signature_scheme: 'w-signature', ordering: 'w-ordering',
};

let editing = null;
let known = [];

/** The event types offered as checkboxes: every seen type, each category's `x.*`, and `*`. */
export function setKnownTypes(types) {
  const set = new Set(['*']);
  for (const t of types) {
    set.add(t);
    set.add(`${t.split('.')[0]}.*`);
  }
  known = [...set].sort((a, b) => (a === '*' ? -1 : b === '*' ? 1 : a.localeCompare(b)));
}

function renderTypes(selected) {
  const box = $('w-types');
  replace(box, known.map((t, i) => h('label', { class: 'check', for: `w-type-${i}` },
    h('input', { type: 'checkbox', id: `w-type-${i}`, value: t, checked: selected.includes(t) }),
    t === '*' ? '* (every event)' : t)));
  if (!known.length) box.append(h('p', { class: 'hint' }, 'No event types seen yet: write patterns below.'));
  $('w-patterns').value = selected.filter((t) => !known.includes(t)).join(', ');
}

function showRetryFields() {
  const kind = $('w-retry-kind').value;
  $('w-retry-max-box').hidden = kind !== 'max';
  $('w-retry-window-box').hidden = kind !== 'max';
  $('w-retry-schedule-box').hidden = kind !== 'schedule';
}

/** Fills the editor from `w` (null: a new webhook). */
export function fill(w) {
  editing = w;
  const form = $('editor-form');
  form.reset();
  clearFieldErrors(form);
  $('editor-error').hidden = true;
  $('editor-title').textContent = w ? `Edit ${w.name}` : 'New webhook';
  $('editor-save').textContent = w ? 'Save changes' : 'Create webhook';
  $('w-name').value = w ? w.name : '';
  $('w-url').value = w ? w.url : '';
  renderTypes(w ? w.event_types : []);
  $('w-enabled').checked = w ? w.enabled : true;
  const p = w && w.retry_policy;
  $('w-retry-kind').value = !p ? 'default' : Array.isArray(p.schedule) ? 'schedule' : 'max';
  $('w-retry-max').value = p && p.max_retries != null ? p.max_retries : '';
  $('w-retry-window').value = (p && p.window) || '';
  $('w-retry-schedule').value = p && Array.isArray(p.schedule) ? p.schedule.join(', ') : '';
  showRetryFields();
  $('w-max-in-flight').value = w ? w.max_in_flight : '';
  $('w-rate-limit').value = w && w.rate_limit != null ? w.rate_limit : '';
  $('w-ordering').value = (w && w.ordering) || 'none';
  $('w-signature').value = (w && w.signature_scheme) || 'v1';
  $('w-filter').value = w && w.filter ? JSON.stringify(w.filter, null, 2) : '';
  const names = w && w.headers ? Object.keys(w.headers) : [];
  $('w-headers').value = '';
  $('w-headers-hint').textContent = names.length
    ? `Set now: ${names.join(', ')} (values hidden). Leave this empty to keep them; to change them, write every header again.`
    : 'Values are secrets: hookrelay never shows them again.';
  $('w-headers-clear-box').hidden = !names.length;
}

function parseHeaders(text) {
  const out = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf(':');
    if (at <= 0) throw new Error(`line ${i + 1} is not “Name: value”`);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

function durations(text) {
  return text.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * Reads the editor into the API's body (for PATCH only what changed), or returns null after
 * marking the first bad field.
 */
export function read() {
  const form = $('editor-form');
  clearFieldErrors(form);
  $('editor-error').hidden = true;
  const fail = (id, message) => { fieldError($(id), message); return null; };
  const name = $('w-name').value.trim();
  if (!name) return fail('w-name', 'A webhook needs a name.');
  const url = $('w-url').value.trim();
  let parsed = null;
  try { parsed = new URL(url); } catch { parsed = null; }
  if (!parsed || !['http:', 'https:'].includes(parsed.protocol)) {
    return fail('w-url', 'A URL whose scheme is http or https.');
  }
  const types = [...$('w-types').querySelectorAll('input:checked')].map((c) => c.value);
  for (const t of durations($('w-patterns').value)) if (!types.includes(t)) types.push(t);
  if (!types.length) return fail('w-patterns', 'Pick at least one event type, or write a pattern.');

  const body = { name, url, event_types: types, enabled: $('w-enabled').checked };
  const kind = $('w-retry-kind').value;
  if (kind === 'default') body.retry_policy = null;
  else if (kind === 'max') {
    const max = Number($('w-retry-max').value);
    if (!Number.isInteger(max) || max < 0 || max > 100 || $('w-retry-max').value === '') {
      return fail('w-retry-max', 'A whole number from 0 to 100.');
    }
    const window = $('w-retry-window').value.trim();
    if (!isDuration(window)) return fail('w-retry-window', 'A duration such as 30m, 2h or 1d.');
    body.retry_policy = { max_retries: max, window };
  } else {
    const schedule = durations($('w-retry-schedule').value);
    const bad = schedule.find((d) => !isDuration(d));
    if (bad) return fail('w-retry-schedule', `“${bad}” is not a duration such as 10s, 1m or 2h.`);
    body.retry_policy = { schedule };
  }
  const mif = $('w-max-in-flight').value.trim();
  if (mif) {
    const n = Number(mif);
    if (!Number.isInteger(n) || n < 1 || n > 1024) return fail('w-max-in-flight', 'A whole number from 1 to 1024.');
    body.max_in_flight = n;
  }
  const rate = $('w-rate-limit').value.trim();
  if (rate) {
    const r = Number(rate);
    if (!Number.isFinite(r) || r <= 0) return fail('w-rate-limit', 'Requests per second, more than 0 (empty for no limit).');
    body.rate_limit = r;
  } else body.rate_limit = null;
  body.ordering = $('w-ordering').value;
  body.signature_scheme = $('w-signature').value;
  const filter = $('w-filter').value.trim();
  if (filter) {
    try { body.filter = JSON.parse(filter); } catch (e) { return fail('w-filter', `Not JSON: ${e.message}`); }
    if (!body.filter || typeof body.filter !== 'object' || Array.isArray(body.filter)) {
      return fail('w-filter', 'A filter is a JSON object, e.g. {"data.plan": "pro"}.');
    }
  } else body.filter = null;
  const headers = $('w-headers').value;
  if ($('w-headers-clear').checked && !$('w-headers-clear-box').hidden) body.headers = null;
  else if (headers.trim()) {
    try { body.headers = parseHeaders(headers); } catch (e) { return fail('w-headers', `Custom headers: ${e.message}.`); }
  }
  return editing ? changes(editing, body) : body;
}

/** Only the fields that differ from `w` (a PATCH that touches nothing else). */
function changes(w, body) {
  const out = {};
  for (const [k, v] of Object.entries(body)) {
    const before = w[k] === undefined ? null : w[k];
    if (k === 'headers' || JSON.stringify(before) !== JSON.stringify(v)) out[k] = v;
  }
  return out;
}

/** The webhook being edited (null while creating). */
export function current() {
  return editing;
}

/** Shows the server's refusal beside the field its `detail` names, or above the buttons. */
export function showServerError(err) {
  const detail = String((err && err.detail) || '');
  const field = detail.split(/[:.[ ]/)[0];
  const input = FIELD_INPUTS[field];
  if (input && $(input)) fieldError($(input), detail);
  const banner = $('editor-error');
  banner.hidden = false;
  banner.textContent = `Not saved — ${err.message}`;
}

export function wireEditor() {
  $('w-retry-kind').addEventListener('change', showRetryFields);
  // Header values are secrets: none stays in the page once the editor is closed.
  $('editor').addEventListener('close', () => { $('w-headers').value = ''; });
}
