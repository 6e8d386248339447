// The view's state lives in the URL's fragment (#range=24h&dim=model&model=x),
// so a view can be shared and the back button works; nothing secret goes there.
export const BASE_DIMS = ["model", "provider", "process", "api_key_id", "tenant", "container"];
export const DIM_LABELS = {
  model: "Model", provider: "Provider", process: "Process", service: "Service",
  api_key_id: "API key", tenant: "Tenant", container: "Container",
};
export const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };

export function read(dims) {
  const p = new URLSearchParams(location.hash.slice(1));
  const filters = {};
  for (const d of dims) if (p.has(d)) filters[d] = p.get(d);
  const range = p.get("range") in RANGES || p.get("range") === "custom" ? p.get("range") : "24h";
  return {
    range,
    since: p.get("since"),
    until: p.get("until"),
    dim: p.get("dim") || "model",
    table: p.get("table") || "model",
    filters,
  };
}

export function write(state) {
  const p = new URLSearchParams();
  p.set("range", state.range);
  if (state.range === "custom") { p.set("since", state.since); p.set("until", state.until); }
  p.set("dim", state.dim);
  p.set("table", state.table);
  for (const [k, v] of Object.entries(state.filters)) p.set(k, v);
  const hash = `#${p.toString()}`;
  if (hash !== location.hash) history.pushState(null, "", hash);
}

// The concrete [since, until) of the view, as ISO strings, and a bucket that fits.
export function timeWindow(state, nowMs = Date.now()) {
  let lo, hi;
  if (state.range === "custom" && state.since && state.until) {
    lo = Date.parse(state.since); hi = Date.parse(state.until);
  } else {
    // Presets end at the next whole minute so the newest calls are inside.
    hi = Math.ceil((nowMs + 1) / 60e3) * 60e3;
    lo = hi - RANGES[state.range in RANGES ? state.range : "24h"];
  }
  const span = hi - lo;
  const bucket = span <= 3 * 3600e3 ? "minute" : span <= 8 * 86400e3 ? "hour" : "day";
  return { since: new Date(lo).toISOString(), until: new Date(hi).toISOString(), lo, hi, bucket };
}

export const BUCKET_MS = { minute: 60e3, hour: 3600e3, day: 86400e3 };
