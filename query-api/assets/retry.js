// hookrelay admin pages: retrying from the delivery log — one attempt, or every failed delivery
// matching the filters (one durable bulk job on the server).

import { api, query } from './api.js';
import { statusText, sentence } from './dom.js';
import { authFailure, confirmDialog, later, toast } from './session.js';

const $ = (id) => document.getElementById(id);

/** How many attempts "Retry all failed" reads at most to count what it will send. */
const COUNT_PAGES = 25;
const COUNT_PAGE_SIZE = 200;

/** The ids of the attempts of `item`'s delivery that exist now (to spot the new one later). */
async function attemptsOf(item) {
  const data = await api(`/deliveries${query({ webhook_id: item.webhook && item.webhook.id, limit: 200 })}`);
  return ((data && data.items) || []).filter((x) => x.delivery_id === item.delivery_id);
}

export async function retryOne(item, button, reload) {
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
  await reload();
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

/** The log's filters that a bulk retry takes too (the API has no response-code filter there). */
const BULK_KEYS = ['q', 'category', 'event_type', 'webhook_id', 'since', 'until'];

/**
 * Works out what "Retry all failed" will send: the deliveries matching the current filters
 * whose latest attempt failed (counted here for the confirmation), and the one bulk request
 * with the same filters that retries them.
 */
async function planBulk(filters) {
  const scope = {};
  for (const k of BULK_KEYS) if (filters[k]) scope[k] = filters[k];
  const latest = new Map();
  let cursor = '';
  let capped = false;
  for (let page = 0; page < COUNT_PAGES; page += 1) {
    const data = await api(`/deliveries${query({
      ...scope, sort: 'attempted_at', order: 'desc', limit: COUNT_PAGE_SIZE, cursor,
    })}`);
    for (const it of (data && data.items) || []) {
      if (!latest.has(it.delivery_id)) latest.set(it.delivery_id, it);
    }
    cursor = (data && data.next_cursor) || '';
    if (!cursor) break;
    if (page === COUNT_PAGES - 1) capped = true;
  }
  const failed = [...latest.values()].filter((it) => it.status !== 'success');
  // One durable bulk job on the server takes the same filters as the table.
  return { count: failed.length, capped, filter: { ...scope, status: 'failed' } };
}

export async function retryAll(filters, describe, reload) {
  const button = $('retry-all');
  button.disabled = true;
  button.textContent = 'Counting…';
  try {
    let plan;
    try {
      plan = await planBulk(filters);
    } catch (err) {
      if (!authFailure(err)) toast(`Could not count the failed deliveries — ${err.message}`, 'error');
      return;
    }
    if (plan.count === 0) {
      toast('No failed deliveries match the current filters: nothing to retry.');
      return;
    }
    const n = `${plan.count}${plan.capped ? '+' : ''}`;
    const scope = describe();
    const ok = await confirmDialog(
      `${n} failed ${plan.count === 1 ? 'delivery' : 'deliveries'}${scope ? ` (${scope})` : ''} will be sent again now, each once, to its webhook.`,
      `Retry ${n}`, 'Retry failed deliveries?');
    if (!ok) return;
    const r = await api('/deliveries/retry', { method: 'POST', body: plan.filter });
    const queued = Number((r && r.queued) || 0);
    const skipped = Number((r && r.skipped_disabled) || 0);
    const skippedNote = skipped ? ` ${skipped} skipped: their webhook is disabled.` : '';
    toast(`${queued} ${queued === 1 ? 'retry' : 'retries'} queued.${skippedNote} The table refreshes as results come in.`, 'ok');
    for (const delay of [1500, 3000, 5000, 8000, 12000, 17000, 23000, 30000]) later(delay, reload);
  } catch (err) {
    if (!authFailure(err)) toast(`Retry all failed — ${err.message}`, 'error');
  } finally {
    button.disabled = false;
    button.textContent = 'Retry all failed…';
  }
}
