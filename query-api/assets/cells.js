// hookrelay admin pages: the small pieces of an attempt shown in the log and in its details.

import { h, sentence, statusText } from './dom.js';

/** A table cell; its content is wrapped so the stacked (narrow) layout has label + one block. */
export function cell(label, cls, ...children) {
  return h('td', { 'data-label': label, class: cls }, h('div', { class: 'cell' }, children));
}

/** ✓ Success / ✕ Failed: colour and text. */
export function badge(status) {
  const ok = status === 'success';
  return h('span', { class: `badge ${ok ? 'success' : 'failed'}` },
    h('span', { 'aria-hidden': 'true' }, ok ? '✓' : '✕'), ok ? 'Success' : 'Failed');
}

/** The response code, or the error when no response came. */
export function responseCell(item) {
  const parts = [];
  if (item.response_code != null) {
    const good = item.response_code >= 200 && item.response_code < 300;
    parts.push(h('span', { class: `code ${good ? 'ok' : 'bad'}` }, statusText(item.response_code)));
  }
  if (item.error) parts.push(h('div', { class: 'err' }, sentence(item.error)));
  return parts.length ? parts : '—';
}

/** "37 ms" / "1.2 s": how long the endpoint took to answer. */
export function duration(ms) {
  if (ms == null || !Number.isFinite(Number(ms))) return '—';
  const n = Number(ms);
  return n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`;
}

/** The admin page of one webhook. */
export function webhookHref(id) {
  return `/admin/webhooks?id=${encodeURIComponent(id)}`;
}
