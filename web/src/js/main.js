// The dashboard: reads the view from the URL, asks the aggregate endpoints for
// what each panel shows (never raw events in bulk), and keeps it current from
// /api/live: each call goes to the feed at once and schedules one coalesced
// refresh of the aggregates, so totals follow within about a second.
import * as api from "./api.js";
import { CostChart } from "./chart.js";
import { Feed } from "./feed.js";
import * as fmt from "./fmt.js";
import * as panels from "./panels.js";
import * as state from "./state.js";

const $ = (id) => document.getElementById(id);
const REFRESH_AFTER_CALL_MS = 400;
const REFRESH_EVERY_MS = 10_000;

let dims = [...state.BASE_DIMS];
let view = state.read(dims);
let hasBudgets = false;
let laps = [];
let refreshing = null;
let again = false;
let soon = null;

const feed = new Feed($("feed"), $("feed-rate"), $("feed-pause"), $("event-dialog"));
const chart = new CostChart($("chart"), $("chart-readout"), $("chart-legend"), (v) => toggleFilter(view.dim, v));
const breakdown = new panels.Breakdown($("breakdown"), (v) => toggleFilter(view.table, v));

function problem(text) {
  $("problem").hidden = !text;
  $("problem").textContent = text ?? "";
}

function toggleFilter(dim, value) {
  if (value == null) return;
  const filters = { ...view.filters };
  if (filters[dim] === value) delete filters[dim]; else filters[dim] = value;
  setView({ ...view, filters });
}

function setView(next) {
  const refilter = JSON.stringify(next.filters) !== JSON.stringify(view.filters);
  view = next;
  state.write(view);
  syncControls();
  refresh();
  if (refilter) seedFeed();
}

// datetime-local inputs take local time without a zone.
const localInput = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60e3).toISOString().slice(0, 16);

function syncControls() {
  for (const b of $("presets").querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.range === view.range));
  $("custom").hidden = view.range !== "custom";
  if (view.range === "custom") {
    const win = state.timeWindow(view);
    $("custom").elements.since.value = localInput(win.lo);
    $("custom").elements.until.value = localInput(win.hi);
  }
  for (const [sel, key] of [[$("chart-dim"), "dim"], [$("table-dim"), "table"]]) {
    sel.replaceChildren(...dims.map((d) => fmt.el("option", { value: d, text: state.DIM_LABELS[d] ?? d })));
    sel.value = view[key];
  }
  $("filters").replaceChildren(...Object.entries(view.filters).map(([d, v]) =>
    fmt.el("button", { type: "button", class: "chip", "aria-label": `Remove filter ${state.DIM_LABELS[d] ?? d} ${v}`, onclick: () => toggleFilter(d, v) },
      `${state.DIM_LABELS[d] ?? d}: ${v} ✕`)));
  feed.setFilter((e) => Object.entries(view.filters).every(([d, v]) => e[d] === v));
}

// The feed starts with the newest few matching calls (one bounded request), then follows live.
async function seedFeed() {
  feed.clear();
  try {
    const recent = await api.get("/api/events", { limit: 50, ...view.filters });
    for (const e of recent.events.reverse()) feed.push(e, false);
  } catch (err) { handle(err); }
}

function localMidnight() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    try { await load(); problem(null); } catch (err) { handle(err); }
  })();
  await refreshing;
  refreshing = null;
  if (again) { again = false; refresh(); }
}

async function load() {
  const shown = view;
  const win = state.timeWindow(view);
  const f = view.filters;
  const range = { since: win.since, until: win.until, ...f };
  const summary = api.get("/api/summary", range);
  const today = api.get("/api/summary", { since: localMidnight(), ...f });
  const lastMinute = api.get("/api/summary", { since: "1m", ...f });
  const last5 = api.get("/api/summary", { since: "5m", ...f });
  const lapsP = api.get("/api/laps");
  const status = api.get("/api/status");
  const usage = api.get("/api/usage", { ...range, group_by: view.dim, bucket: win.bucket });
  const table = api.get("/api/breakdown", { ...range, dim: view.table });
  const cache = api.get("/api/cache", range);
  const budgets = hasBudgets ? api.get("/api/budgets") : null;

  laps = (await lapsP).laps;
  const lap = laps.find((l) => !l.ended_at) ?? null;
  panels.renderGauges($("gauges"), {
    range: await summary, today: await today, lastMinute: await lastMinute, last5: await last5, lap, status: await status,
  });
  if (!performance.getEntriesByName("lumen:gauges").length) performance.mark("lumen:gauges");
  document.body.dataset.since = win.since;
  document.body.dataset.until = win.until;
  chart.update(await usage, win);
  breakdown.update(await table, state.DIM_LABELS[view.table] ?? view.table, view.filters[view.table]);
  panels.renderCache($("cache-summary"), $("cache"), await cache);
  renderLapList();
  if (budgets) panels.renderBudgets($("budgets"), await budgets);
  // A load for a view that changed meanwhile is not "loaded": the rerun queued by refresh() is.
  if (shown !== view) return;
  const loaded = Number(document.body.dataset.loaded ?? 0) + 1;
  if (loaded === 1) performance.mark("lumen:loaded");
  document.body.dataset.loaded = String(loaded);
}

let lapCount = -1;
function renderLapList() {
  panels.renderLaps($("laps"), laps);
  const form = $("lap-compare");
  // A new lap resets the comparison to the last two; otherwise the reader's choice stays.
  const reset = laps.length !== lapCount;
  lapCount = laps.length;
  for (const [name, fallback] of [["a", laps.length - 2], ["b", laps.length - 1]]) {
    const sel = form.elements[name];
    const keep = sel.value;
    sel.replaceChildren(...laps.map((l, i) => fmt.el("option", { value: String(i), text: `${l.name} (${fmt.dateTime(l.started_at)})` })));
    sel.value = reset ? String(Math.max(0, fallback)) : keep;
  }
  compareLaps();
}

async function compareLaps() {
  const form = $("lap-compare");
  form.hidden = laps.length < 2;
  const a = laps[Number(form.elements.a.value)], b = laps[Number(form.elements.b.value)];
  try { await panels.renderLapDiff($("lap-diff"), laps.length >= 2 ? a : null, b); } catch (err) { handle(err); }
}

function handle(err) {
  if (err instanceof api.Unauthorised) { askToken(); return; }
  problem(`Could not load: ${err.message}`);
  console.warn(err);
}

function scheduleRefresh() {
  if (soon) return;
  soon = setTimeout(() => { soon = null; refresh(); }, REFRESH_AFTER_CALL_MS);
}

async function follow() {
  const conn = $("conn");
  for (let backoff = 1000; ; backoff = Math.min(backoff * 2, 15_000)) {
    try {
      conn.textContent = "live"; conn.className = "conn live";
      await api.live((e) => {
        if (e.service !== undefined && !dims.includes("service")) { dims.splice(2, 0, "service"); syncControls(); }
        feed.push(e);
        scheduleRefresh();
      });
      backoff = 1000;
    } catch (err) {
      if (err instanceof api.Unauthorised) { askToken(); return; }
    }
    conn.textContent = "reconnecting…"; conn.className = "conn down";
    await new Promise((r) => setTimeout(r, backoff));
  }
}

function askToken(message) {
  const dialog = $("login");
  $("login-error").hidden = !message;
  $("login-error").textContent = message ?? "";
  if (!dialog.open) dialog.showModal();
}

async function signIn(event) {
  event.preventDefault();
  const token = new FormData(event.target).get("token");
  api.setToken(token);
  try {
    await api.get("/api/status");
  } catch (err) {
    api.clearToken();
    askToken(err instanceof api.Unauthorised ? "That token was refused." : err.message);
    return;
  }
  $("login").close();
  start();
}

// Optional panels appear when the daemon offers them (feature detection, no versions).
async function detect() {
  const newest = (await api.get("/api/events", { limit: 1 })).events[0];
  if (newest && "service" in newest && !dims.includes("service")) dims.splice(2, 0, "service");
  // Ask the schema first: probing /api/budgets on a daemon without it would log a 404.
  const schema = await api.get("/openapi.json");
  if ("/api/budgets" in (schema.paths ?? {})) {
    try {
      await api.get("/api/budgets");
      hasBudgets = true;
    } catch (err) {
      if (!(err instanceof api.NotFound)) throw err;
    }
  }
  $("budgets-panel").hidden = !hasBudgets;
  view = state.read(dims);
}

let started = false;
async function start() {
  try {
    await detect();
  } catch (err) { handle(err); return; }
  if (started) { refresh(); return; }
  started = true;
  syncControls();
  await refresh();
  await seedFeed();
  follow();
  setInterval(refresh, REFRESH_EVERY_MS);
}

function bind() {
  $("presets").addEventListener("click", (e) => {
    const range = e.target.closest("button")?.dataset.range;
    if (!range) return;
    if (range === "custom") {
      const win = state.timeWindow(view);
      setView({ ...view, range, since: win.since, until: win.until });
    } else setView({ ...view, range });
  });
  $("custom").addEventListener("submit", (e) => {
    e.preventDefault();
    const since = new Date(e.target.elements.since.value).toISOString();
    const until = new Date(e.target.elements.until.value).toISOString();
    setView({ ...view, range: "custom", since, until });
  });
  $("chart-dim").addEventListener("change", (e) => setView({ ...view, dim: e.target.value }));
  $("table-dim").addEventListener("change", (e) => setView({ ...view, table: e.target.value }));
  window.addEventListener("popstate", () => { view = state.read(dims); syncControls(); refresh(); seedFeed(); });
  $("lap-start").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = e.target.elements.name;
    try { await api.post("/api/laps", { name: input.value.trim() || `lap ${laps.length + 1}` }); } catch (err) { handle(err); }
    input.value = "";
    refresh();
  });
  $("lap-end").addEventListener("click", async () => {
    try { await api.post("/api/laps/end"); } catch (err) { handle(err); }
    refresh();
  });
  $("lap-compare").addEventListener("change", compareLaps);
  $("login-form").addEventListener("submit", signIn);
  $("login").addEventListener("cancel", (e) => e.preventDefault());
}

bind();
start();
