// hookrelay admin pages: the details dialog of one attempt (request, headers, payload, response).

import { api } from './api.js';
import { h, replace, localTime, sentence, statusText, pretty, copyText } from './dom.js';
import { badge, responseCell, duration, webhookHref } from './cells.js';
import { authFailure } from './session.js';

const $ = (id) => document.getElementById(id);

export async function openDetails(id, opener, onRetry) {
  const dlg = $('details');
  const body = $('details-body');
  $('details-title').textContent = 'Delivery attempt';
  replace(body, h('p', { class: 'state' }, 'Loading…'));
  dlg.opener = opener;
  if (!dlg.open) dlg.showModal();
  try {
    const d = await api(`/deliveries/${encodeURIComponent(id)}`);
    renderDetails(d, onRetry);
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

function renderDetails(d, onRetry) {
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
    h('dt', {}, 'Response time'), h('dd', { id: 'details-duration' }, duration(d.duration_ms)),
    h('dt', {}, 'Webhook'), h('dd', {}, wh.id ? h('a', { href: webhookHref(wh.id) }, wh.name || '—') : (wh.name || '—'), ' ', h('span', { class: 'wh-url' }, wh.url || '')),
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
      onclick: (e) => onRetry(d, e.currentTarget),
    }, 'Retry this delivery')) : null,
    h('h3', {}, 'Request'),
    h('p', { class: 'mono', id: 'request-line' }, `${req.method || 'POST'} ${req.url || wh.url || ''}`),
    h('h4', {}, 'Request headers'), headerRows(req.headers),
    h('h3', {}, 'Payload', copy),
    payloadPre,
    h('h3', {}, 'Response'),
    responseSection);
}
