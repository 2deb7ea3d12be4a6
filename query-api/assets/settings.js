// hookrelay admin pages: the stored settings — data retention and the default retry policy.
// Admins read them; only an owner may change them (the form is read-only otherwise, saying so).

import { api } from './api.js';
import { localTime } from './dom.js';
import { clearFieldErrors, fieldError, isDuration } from './forms.js';
import { active, authFailure, role, startSession, toast } from './session.js';

const $ = (id) => document.getElementById(id);

/** Which input a server error names (`retention: …`, `retry.window: …`, `retry.schedule[1]: …`). */
const FIELD_INPUTS = {
  retention: 's-retention', 'retry.max_retries': 's-retry-max', 'retry.window': 's-retry-window',
  'retry.schedule': 's-retry-schedule', retry: 's-retry-kind',
};

let loaded = null;
let canEdit = false;

function setState(text, kind) {
  const el = $('state');
  el.className = kind ? `state ${kind}` : 'state';
  el.textContent = text;
}

function sourceText(source, defaults) {
  return source === 'stored'
    ? `Set here (the configured default is ${defaults}).`
    : 'From the configuration (HOOKRELAY_* or the TOML file): not changed here yet.';
}

function policyText(p) {
  if (!p) return '—';
  if (Array.isArray(p.schedule)) return p.schedule.length ? `schedule ${p.schedule.join(', ')}` : 'no automatic retries';
  return `${p.max_retries} retries within ${p.window}`;
}

function showRetryFields() {
  const kind = $('s-retry-kind').value;
  $('s-retry-max-box').hidden = kind !== 'max';
  $('s-retry-window-box').hidden = kind !== 'max';
  $('s-retry-schedule-box').hidden = kind !== 'schedule';
}

function fill(s) {
  loaded = s;
  const form = $('settings-form');
  clearFieldErrors(form);
  $('settings-error').hidden = true;
  const src = s.source || {};
  const defs = s.defaults || {};
  $('s-retention').value = s.retention || '';
  $('s-retention-default').checked = false;
  $('s-retention-source').textContent = sourceText(src.retention, defs.retention);
  const p = s.retry || {};
  const schedule = Array.isArray(p.schedule);
  $('s-retry-kind').value = schedule ? 'schedule' : 'max';
  $('s-retry-max').value = p.max_retries != null ? p.max_retries : '';
  $('s-retry-window').value = p.window || '';
  $('s-retry-schedule').value = schedule ? p.schedule.join(', ') : '';
  showRetryFields();
  $('s-retry-source').textContent = src.retry === 'stored'
    ? `Set here (the configured default is ${policyText(defs.retry)}).`
    : sourceText(src.retry, policyText(defs.retry));
  $('s-updated').textContent = s.updated_at
    ? `Last changed ${localTime(s.updated_at)} by ${s.updated_by || 'someone'}.`
    : 'Never changed here: every value comes from the configuration.';
}

function setEditable(me) {
  canEdit = me === 'owner';
  for (const f of $('settings-form').querySelectorAll('fieldset, button')) f.disabled = !canEdit;
  const note = $('readonly');
  note.hidden = canEdit;
  note.textContent = canEdit ? '' : `Read-only: only an owner can change settings, and you are signed in with ${me === 'admin' ? 'an admin' : 'a'} token. Ask an owner, or sign in with an owner token.`;
}

async function load() {
  if (!active()) return;
  setState('Loading settings…');
  try {
    const [s, me] = await Promise.all([api('/settings'), role()]);
    fill(s);
    setEditable(me);
    setState('');
  } catch (err) {
    if (!authFailure(err)) setState(`Could not load the settings — ${err.message}`, 'error');
  }
}

/** The PUT body: only what differs from what was loaded; null for "the configured default". */
function read() {
  const fail = (id, message) => { fieldError($(id), message); return null; };
  const body = {};
  if ($('s-retention-default').checked) {
    if (loaded.source && loaded.source.retention === 'stored') body.retention = null;
  } else {
    const r = $('s-retention').value.trim();
    if (!/^[0-9]+d$/.test(r) || Number(r.slice(0, -1)) < 1 || Number(r.slice(0, -1)) > 365) {
      return fail('s-retention', 'A number of days from 1d to 365d, e.g. 30d.');
    }
    if (r !== loaded.retention) body.retention = r;
  }
  const kind = $('s-retry-kind').value;
  let retry;
  if (kind === 'default') retry = null;
  else if (kind === 'max') {
    const raw = $('s-retry-max').value;
    const max = Number(raw);
    if (raw === '' || !Number.isInteger(max) || max < 0 || max > 100) return fail('s-retry-max', 'A whole number from 0 to 100.');
    const window = $('s-retry-window').value.trim();
    if (!isDuration(window)) return fail('s-retry-window', 'A duration such as 30m, 2h or 1d.');
    retry = { max_retries: max, window };
  } else {
    const schedule = $('s-retry-schedule').value.split(',').map((x) => x.trim()).filter(Boolean);
    const bad = schedule.find((d) => !isDuration(d));
    if (bad) return fail('s-retry-schedule', `“${bad}” is not a duration such as 10s, 1m or 2h.`);
    retry = { schedule };
  }
  if (retry === null) {
    if (loaded.source && loaded.source.retry === 'stored') body.retry = null;
  } else if (JSON.stringify(retry) !== JSON.stringify(loaded.retry)) body.retry = retry;
  return body;
}

async function save(e) {
  e.preventDefault();
  if (!canEdit) return;
  clearFieldErrors($('settings-form'));
  $('settings-error').hidden = true;
  const body = read();
  if (!body) return;
  if (!Object.keys(body).length) {
    toast('Nothing changed.');
    return;
  }
  const button = $('settings-save');
  button.disabled = true;
  try {
    const s = await api('/settings', { method: 'PUT', body });
    fill(s);
    toast('Settings saved. Every replica uses them within seconds.', 'ok');
    setState('Saved: the change is in the activity log.');
  } catch (err) {
    if (err && err.status === 403) {
      setEditable('admin');
    } else if (!authFailure(err)) {
      const detail = String(err.detail || '');
      const field = detail.split(/[:[ ]/)[0];
      if (FIELD_INPUTS[field]) fieldError($(FIELD_INPUTS[field]), detail);
      $('settings-error').hidden = false;
      $('settings-error').textContent = `Not saved — ${err.message}`;
    }
  } finally {
    button.disabled = !canEdit;
  }
}

$('settings-form').addEventListener('submit', save);
$('s-retry-kind').addEventListener('change', showRetryFields);
$('s-retention-default').addEventListener('change', (e) => { $('s-retention').disabled = e.target.checked; });
startSession({
  view: 'view-settings',
  probe: '/settings',
  onShow: load,
  onSignOut: () => { loaded = null; setState(''); },
});
