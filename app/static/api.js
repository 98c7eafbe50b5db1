// ECG web page, the backend's API: every call goes through `api` (token, errors in words).

import { $ } from "./page.js";

// The backend answers errors as {"error": CODE, "detail": "…" | [{loc, msg}]}.
export async function errorText(resp) {
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (body && body.detail !== undefined) {
    const d = body.detail;
    if (Array.isArray(d) && d.length) return d.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
    if (typeof d === "object") return d.message || d.error || JSON.stringify(d);
    return String(d);
  }
  return `${resp.status} ${resp.statusText}`;
}

// An optional Bearer token (servers with JWT_SECRET); kept for this browser tab only.
export function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export async function api(path, options = {}) {
  let resp;
  try {
    resp = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  } catch (err) {
    throw new Error(`Cannot reach the backend (${err.message}).`);
  }
  if (!resp.ok) throw new Error(`${await errorText(resp)} (HTTP ${resp.status})`);
  return resp.json();
}
