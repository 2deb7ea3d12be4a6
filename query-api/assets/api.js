// hookrelay admin page: the JSON API client. The token lives in sessionStorage only (this tab),
// is sent as a bearer token, and never goes into a URL or a log line.

const TOKEN_KEY = 'hookrelay.admin.token';

export const token = {
  get() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
  },
  set(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
  },
  clear() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* storage disabled: nothing kept */ }
  },
};

/** An API failure: `status` 0 means the API could not be reached at all. */
export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

/** Calls `/api/v1{path}`; resolves to the parsed JSON body, rejects with ApiError. */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'The API could not be reached', 'check that hookrelay is running and try again');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const title = (data && typeof data.title === 'string' && data.title) || res.statusText || `HTTP ${res.status}`;
    const detail = (data && typeof data.detail === 'string' && data.detail) || '';
    throw new ApiError(res.status, title, detail);
  }
  return data;
}

/** A query string from the non-empty entries of `params`. */
export function query(params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
  }
  const s = qs.toString();
  return s ? `?${s}` : '';
}
