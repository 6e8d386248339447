// The API client: bearer token from the tab's session storage (never the URL),
// JSON fetches, and the /api/live SSE stream read through fetch so that the
// token travels as a header (EventSource cannot send one).
const KEY = "lumen-sniff.token";

export class Unauthorised extends Error {}
export class NotFound extends Error {}

function headers() {
  const token = sessionStorage.getItem(KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function setToken(token) { sessionStorage.setItem(KEY, token); }
export function clearToken() { sessionStorage.removeItem(KEY); }

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function get(path, params = {}) {
  const res = await fetch(path + query(params), { headers: headers() });
  return answer(res, path);
}

export async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { ...headers(), "Content-Type": "application/json" },
    body: JSON.stringify(body ?? {}),
  });
  return answer(res, path);
}

async function answer(res, path) {
  if (res.status === 401) throw new Unauthorised(path);
  if (res.status === 404) throw new NotFound(path);
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new Error(`${path}: ${res.status} ${detail}`);
  }
  return res.json();
}

// Reads `usage` events from /api/live until the stream ends or `signal` aborts.
export async function live(onEvent, signal) {
  const res = await fetch("/api/live", { headers: headers(), signal });
  if (res.status === 401) throw new Unauthorised("/api/live");
  if (!res.ok || !res.body) throw new Error(`/api/live: ${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (type === "usage" && data.length) onEvent(JSON.parse(data.join("\n")));
    }
  }
}
