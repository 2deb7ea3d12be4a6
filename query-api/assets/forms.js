// hookrelay admin pages: form helpers — errors shown beside the field they name, and the
// conversions between the browser's local date-time inputs and the API's RFC 3339 times.

import { h } from './dom.js';

/** Marks `field` invalid, says why beside it (announced), and moves the focus there. */
export function fieldError(field, message) {
  field.setAttribute('aria-invalid', 'true');
  const id = `${field.id}-error`;
  let el = document.getElementById(id);
  if (!el) {
    el = h('p', { id, class: 'field-error', role: 'alert' });
    field.after(el);
  }
  el.textContent = message;
  field.setAttribute('aria-describedby', id);
  field.focus();
}

/** Removes every error shown by `fieldError` inside `root`. */
export function clearFieldErrors(root) {
  for (const f of root.querySelectorAll('[aria-invalid="true"]')) {
    f.removeAttribute('aria-invalid');
    const el = document.getElementById(`${f.id}-error`);
    if (el) el.remove();
    f.removeAttribute('aria-describedby');
  }
}

/** `<input type="datetime-local">`'s value (local time) as RFC 3339 UTC, '' when empty or bad. */
export function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

/** An RFC 3339 time as a `datetime-local` value in local time ('' when it does not parse). */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A duration as the API writes them (`30d`, `10s`, `500ms`, `2h`, `30m`), or null. */
export function isDuration(s) {
  return /^[0-9]+(ms|s|m|h|d)$/.test(String(s).trim());
}
