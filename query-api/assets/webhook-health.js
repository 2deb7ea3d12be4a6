// hookrelay admin pages: a webhook's health (the 24 h summary of `GET /api/v1/webhooks`, the
// circuit of `GET /api/v1/webhooks/{id}`) and sending it a test event, then showing how it went.

import { api, query } from './api.js';
import { h, replace, localTime, sentence, statusText } from './dom.js';
import { duration } from './cells.js';
import { active, authFailure, toast } from './session.js';

const CIRCUIT = { closed: 'Circuit closed', open: 'Circuit open', half_open: 'Circuit half-open' };
/** How long a test event's outcome is waited for (the first attempt is sent at once). */
const TEST_WAIT_MS = 30000;

function percent(rate) {
  const p = Math.round(Number(rate) * 1000) / 10;
  return `${p}%`;
}

function circuitBadge(c) {
  if (!c || !c.circuit) return null;
  const until = c.circuit === 'open' && c.open_until ? ` until ${localTime(c.open_until)}` : '';
  const failures = c.consecutive_failures ? ` · ${c.consecutive_failures} consecutive failures` : '';
  return h('div', { class: 'circuit-line' },
    h('span', { class: `circuit ${c.circuit}`, title: c.last_error || '' }, CIRCUIT[c.circuit] || c.circuit),
    h('span', { class: 'meta' }, `${until}${failures}`));
}

/** The summary line: success rate, failures and attempts over 24 h, when the list carries them. */
function summary(s) {
  if (!s || !('success_rate' in s)) return null;
  const attempts = Number(s.attempts);
  if (s.success_rate == null || !(attempts > 0)) return h('div', { class: 'rate-line meta' }, 'No attempts in 24 h');
  const rate = Number(s.success_rate);
  const failed = s.failed != null ? Number(s.failed) : Math.round(attempts * (1 - rate));
  return h('div', { class: 'rate-line' },
    h('span', { class: `rate ${rate < 0.9 ? 'bad' : 'ok'}` }, `${percent(rate)} success`),
    h('span', { class: 'meta failure-rate' }, ` · ${percent(1 - rate)} failed (${failed} of ${attempts} ${attempts === 1 ? "attempt" : "attempts"})`));
}

/** The health cell of a webhook's row; the circuit is fetched when the list item lacks it. */
export function healthCell(w) {
  const box = h('div', { class: 'health' });
  const s = w.health || null;
  const line = summary(s);
  if (line) box.append(line);
  if (s && s.circuit) {
    const c = circuitBadge(s);
    if (c) box.append(c);
  } else {
    api(`/webhooks/${encodeURIComponent(w.id)}`).then((full) => {
      const c = circuitBadge(full && full.health);
      if (c) box.append(c);
      else if (!line) box.append(h('div', { class: 'meta' }, 'Health unknown (Redis not readable)'));
    }).catch(() => { /* The rest of the row still stands. */ });
  }
  box.append(h('div', { class: 'test-outcome', role: 'status', 'aria-live': 'polite' }));
  return box;
}

function outcomeEl(w) {
  return document.querySelector(`#rows tr[data-id="${CSS.escape(w.id)}"] .test-outcome`);
}

function logLink(w) {
  return h('a', { href: `/admin/webhook-deliveries${query({ webhook_id: w.id, event_type: 'webhook.test' })}` }, 'see it in the log');
}

async function waitForAttempt(w, deliveryId) {
  const deadline = Date.now() + TEST_WAIT_MS;
  while (Date.now() < deadline && active()) {
    await new Promise((r) => setTimeout(r, 700));
    const data = await api(`/deliveries${query({ webhook_id: w.id, event_type: 'webhook.test', limit: 50 })}`);
    const hit = ((data && data.items) || []).find((it) => it.delivery_id === deliveryId);
    if (hit) return hit;
  }
  return null;
}

/** Sends `webhook.test` to `w` alone, then shows the attempt's outcome in its row. */
export async function sendTest(w, button) {
  button.disabled = true;
  button.textContent = 'Sending…';
  const show = (kind, ...parts) => {
    const el = outcomeEl(w);
    if (!el) return;
    el.className = `test-outcome outcome ${kind}`;
    replace(el, ...parts);
  };
  try {
    let sent;
    try {
      sent = await api(`/webhooks/${encodeURIComponent(w.id)}/test`, { method: 'POST' });
    } catch (err) {
      if (authFailure(err)) return;
      const missing = err.status === 405 || (err.status === 404 && err.detail.includes('no such route'));
      show('err', missing
        ? 'This API does not send test events yet (it needs POST /api/v1/webhooks/{id}/test).'
        : `The test event was not sent — ${err.message}`);
      return;
    }
    show('', 'Test event sent, waiting for its attempt…');
    const hit = await waitForAttempt(w, sent.delivery_id);
    if (!hit) {
      show('', 'Test event queued; no attempt yet (the webhook may be disabled, limited or its circuit open) — ', logLink(w));
      return;
    }
    const ok = hit.status === 'success';
    const what = hit.response_code != null ? statusText(hit.response_code) : sentence(hit.error || 'no response');
    show(ok ? 'ok' : 'err', ok ? '✓ Test delivered: ' : '✕ Test failed: ', `${what} in ${duration(hit.duration_ms)} — `, logLink(w));
    toast(`Test event to ${w.name} ${ok ? 'delivered' : 'failed'}: ${what}`, ok ? 'ok' : 'error');
  } catch (err) {
    if (!authFailure(err)) show('err', `Could not follow the test event — ${err.message}`);
  } finally {
    button.disabled = false;
    button.textContent = 'Send test';
  }
}
