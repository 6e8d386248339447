// Gauges, breakdown and cache tables, laps and budgets: each takes API answers
// and redraws its own element, nothing else.
import * as api from "./api.js";
import * as fmt from "./fmt.js";

const TOKEN_KINDS = [
  ["input_tokens", "Input"], ["output_tokens", "Output"], ["cache_read_tokens", "Cache read"],
  ["cache_write_tokens", "Cache write"], ["reasoning_tokens", "Reasoning"],
];

function gauge(id, label, value, { sub, cls, exact } = {}) {
  return fmt.el("div", { class: `gauge ${cls ?? ""}`, id: `g-${id}`, dataset: exact == null ? {} : { value: String(exact) } },
    fmt.el("div", { class: "label", text: label }),
    fmt.el("div", { class: "value", text: value }),
    sub ? fmt.el("div", { class: "sub", text: sub }) : null);
}

// g: {range, today, lastMinute, last5, lap, status}
export function renderGauges(root, g) {
  const r = g.range, tokens = (t) => t.input_tokens + t.output_tokens;
  const dropped = Object.entries(g.status?.capture?.dropped ?? {}).filter(([, c]) => c > 0);
  const droppedTotal = dropped.reduce((s, [, c]) => s + c, 0);
  const unseen = g.status?.unseen ?? g.status?.capture?.unseen;
  const cards = [
    gauge("today", "Spend today", fmt.usd(g.today.cost_usd), { exact: g.today.cost_usd }),
    gauge("lap", g.lap ? `Lap “${g.lap.name}”` : "Lap", g.lap ? fmt.usd(g.lap.cost_usd) : "no lap", { sub: g.lap ? `${fmt.n(g.lap.requests)} calls` : "start one below" }),
    gauge("per-hour", "$/hour now", fmt.usd(g.last5.cost_usd * 12), { sub: "last 5 min" }),
    gauge("tokens-s", "Tokens/s", fmt.rate(tokens(g.lastMinute) / 60), { sub: "last minute" }),
    gauge("req-min", "Requests/min", fmt.n(g.lastMinute.requests), { sub: "last minute" }),
    gauge("cost", "Spend in range", fmt.usd(r.cost_usd), { exact: r.cost_usd }),
    gauge("requests", "Requests in range", fmt.n(r.requests), { exact: r.requests, sub: `${fmt.n(tokens(r))} tokens` }),
    gauge("errors", "Errors", fmt.n(r.errors), { exact: r.errors, cls: r.errors ? "bad" : "" }),
    gauge("unpriced", "Unpriced calls", fmt.n(r.unpriced_requests), { exact: r.unpriced_requests, cls: r.unpriced_requests ? "warn" : "", sub: "not counted as $0" }),
    gauge("estimated", "Estimated calls", fmt.n(r.estimated_requests), { exact: r.estimated_requests, sub: "usage not reported" }),
    gauge("capture", "Capture drops", fmt.n(droppedTotal), {
      cls: droppedTotal ? "warn" : "",
      sub: dropped.length ? dropped.map(([k, c]) => `${k}: ${fmt.n(c)}`).join(", ") : (g.status?.ready ? "capture ready" : "capture not ready"),
    }),
  ];
  if (Array.isArray(unseen)) {
    const names = unseen.slice(0, 3).map((u) => (typeof u === "string" ? u : u.process ?? u.exe ?? u.comm ?? `pid ${u.pid}`));
    cards.push(gauge("unseen", "Unreadable LLM clients", fmt.n(unseen.length), {
      cls: unseen.length ? "warn" : "",
      sub: unseen.length ? names.join(", ") + (unseen.length > 3 ? "…" : "") : "none",
    }));
  }
  root.replaceChildren(...cards);
}

const BREAKDOWN_COLS = [
  ["value", "text"], ["requests", "n"], ["errors", "n"], ["input_tokens", "n"], ["output_tokens", "n"],
  ["cache_read_tokens", "n"], ["cache_write_tokens", "n"], ["reasoning_tokens", "n"], ["cost_usd", "usd"], ["share", "pct"],
];
const COL_LABELS = { value: "", requests: "Requests", errors: "Errors", input_tokens: "Input", output_tokens: "Output",
  cache_read_tokens: "Cache read", cache_write_tokens: "Cache write", reasoning_tokens: "Reasoning", cost_usd: "Cost", share: "Share" };

export class Breakdown {
  constructor(table, onPick) { this.table = table; this.onPick = onPick; this.sort = ["cost_usd", -1]; this.rows = []; this.label = ""; }

  update(answer, label, active) {
    const total = answer.rows.reduce((s, r) => s + (r.cost_usd ?? 0), 0);
    this.rows = answer.rows.map((r) => ({ ...r, share: total > 0 && r.cost_usd != null ? r.cost_usd / total : null }));
    this.label = label; this.active = active; this.render();
  }

  render() {
    const [key, dir] = this.sort;
    const rows = [...this.rows].sort((a, b) => {
      const x = a[key] ?? -Infinity, y = b[key] ?? -Infinity;
      return (typeof x === "string" || typeof y === "string" ? String(x).localeCompare(String(y)) : x - y) * dir;
    });
    const head = fmt.el("tr", {}, ...BREAKDOWN_COLS.map(([k, kind]) => {
      const sorted = key === k ? (dir > 0 ? "ascending" : "descending") : null;
      const b = fmt.el("button", { type: "button", onclick: () => { this.sort = [k, key === k ? -dir : (kind === "text" ? 1 : -1)]; this.render(); } },
        (k === "value" ? this.label : COL_LABELS[k]) + (sorted ? (dir > 0 ? " ▲" : " ▼") : ""));
      return fmt.el("th", { scope: "col", class: kind === "text" ? "text" : null, "aria-sort": sorted }, b);
    }));
    const body = rows.map((r) => {
      const name = r.value ?? "(none)";
      const pick = r.value == null ? name : fmt.el("button", {
        type: "button", "aria-pressed": String(this.active === r.value),
        title: this.active === r.value ? "Remove this filter" : "Filter every panel by this", onclick: () => this.onPick(r.value),
      }, name);
      return fmt.el("tr", { class: r.value == null ? null : "pick", dataset: { value: r.value ?? "" } },
        fmt.el("td", { class: "name" }, pick),
        ...BREAKDOWN_COLS.slice(1).map(([k, kind]) => fmt.el("td", { text: kind === "usd" ? fmt.usd(r[k]) : kind === "pct" ? fmt.pct(r[k]) : fmt.n(r[k]) })));
    });
    if (!body.length) body.push(fmt.el("tr", {}, fmt.el("td", { colspan: String(BREAKDOWN_COLS.length), class: "text muted", text: "No calls in this range." })));
    this.table.replaceChildren(fmt.el("caption", { class: "sr-only", text: `Totals by ${this.label}` }), fmt.el("thead", {}, head), fmt.el("tbody", {}, ...body));
  }
}

export function renderCache(summaryEl, table, c) {
  summaryEl.replaceChildren(
    gauge("cache-share", "Input from cache", fmt.pct(c.cache_read_share), { sub: `${fmt.n(c.cache_read_tokens)} of ${fmt.n(c.input_tokens)} tokens` }),
    gauge("cache-saved", "Saved by cache", fmt.usd(c.saved_usd), { exact: c.saved_usd, sub: `net of cache writes ${fmt.usd(c.net_saved_usd)}` }),
    gauge("cache-written", "Written to cache", fmt.n(c.cache_write_tokens), { sub: "tokens" }),
  );
  const head = fmt.el("tr", {}, ...["Model", "Input", "Cache read", "Cached", "Saved"].map((h, i) => fmt.el("th", { scope: "col", class: i ? null : "text", text: h })));
  const rows = c.models.map((m) => {
    const bar = fmt.el("div", { class: "bar", role: "img", "aria-label": fmt.pct(m.cache_read_share) }, fmt.el("span"));
    bar.firstChild.style.width = `${Math.round((m.cache_read_share ?? 0) * 100)}%`;
    return fmt.el("tr", {},
      fmt.el("td", { class: "text", text: m.model ?? "(none)" }),
      fmt.el("td", { text: fmt.n(m.input_tokens) }),
      fmt.el("td", { text: fmt.n(m.cache_read_tokens) }),
      fmt.el("td", {}, fmt.el("div", { title: fmt.pct(m.cache_read_share) }, bar)),
      fmt.el("td", { text: m.priced ? fmt.usd(m.saved_usd) : fmt.UNPRICED, title: m.priced ? null : "unpriced model" }));
  });
  table.replaceChildren(fmt.el("caption", { class: "sr-only", text: "Cache use by model" }), fmt.el("thead", {}, head), fmt.el("tbody", {}, ...rows));
}

export function renderLaps(table, laps) {
  const head = fmt.el("tr", {}, ...["Lap", "Started", "Ended", "Requests", "Cost", "Per call"].map((h, i) => fmt.el("th", { scope: "col", class: i < 3 ? "text" : null, text: h })));
  const rows = [...laps].reverse().map((l) => fmt.el("tr", {},
    fmt.el("td", { class: "text", text: l.name }),
    fmt.el("td", { class: "text", text: fmt.dateTime(l.started_at) }),
    fmt.el("td", { class: "text", text: l.ended_at ? fmt.dateTime(l.ended_at) : "running" }),
    fmt.el("td", { text: fmt.n(l.requests) }),
    fmt.el("td", { text: fmt.usd(l.cost_usd) }),
    fmt.el("td", { text: l.requests ? fmt.usdCall(l.cost_usd / l.requests) : fmt.UNPRICED })));
  if (!rows.length) rows.push(fmt.el("tr", {}, fmt.el("td", { colspan: "6", class: "text muted", text: "No laps yet: start one to compare before and after a change." })));
  table.replaceChildren(fmt.el("caption", { class: "sr-only", text: "Laps, newest first" }), fmt.el("thead", {}, head), fmt.el("tbody", {}, ...rows));
}

// Two laps side by side: totals from /api/laps, models from /api/breakdown over each lap's range.
export async function renderLapDiff(table, a, b) {
  if (!a || !b) { table.replaceChildren(); return; }
  const models = async (l) => (await api.get("/api/breakdown", { dim: "model", since: l.started_at, until: l.ended_at ?? undefined })).rows;
  const [ma, mb] = await Promise.all([models(a), models(b)]);
  const perCall = (l) => (l.requests ? fmt.usdCall(l.cost_usd / l.requests) : fmt.UNPRICED);
  const names = (rows) => rows.map((r) => `${r.value ?? "(none)"} (${fmt.n(r.requests)})`).join(", ") || "none";
  const lines = [
    ["Requests", fmt.n(a.requests), fmt.n(b.requests)],
    ...TOKEN_KINDS.map(([k, label]) => [`${label} tokens`, fmt.n(a[k]), fmt.n(b[k])]),
    ["Cost", fmt.usd(a.cost_usd), fmt.usd(b.cost_usd)],
    ["Cost per call", perCall(a), perCall(b)],
    ["Unpriced calls", fmt.n(a.unpriced_requests), fmt.n(b.unpriced_requests)],
    ["Models", names(ma), names(mb)],
  ];
  const head = fmt.el("tr", {}, fmt.el("th", { scope: "col", class: "text", text: "" }), fmt.el("th", { scope: "col", text: a.name }), fmt.el("th", { scope: "col", text: b.name }));
  table.replaceChildren(fmt.el("caption", { class: "sr-only", text: `Lap ${a.name} compared with lap ${b.name}` }), fmt.el("thead", {}, head),
    fmt.el("tbody", {}, ...lines.map(([k, x, y]) => fmt.el("tr", {}, fmt.el("th", { scope: "row", class: "text", text: k }), fmt.el("td", { text: x }), fmt.el("td", { text: y })))));
}

// Budgets from /api/budgets: {budgets: [...]} or a list; field names are read loosely
// so the panel needs no redesign when the budgets route settles its shape.
export function renderBudgets(root, answer) {
  const list = Array.isArray(answer) ? answer : answer.budgets ?? [];
  if (!list.length) { root.replaceChildren(fmt.el("p", { class: "muted", text: "No budgets configured." })); return; }
  root.replaceChildren(...list.map((b) => {
    const limit = b.limit_usd ?? b.limit ?? b.amount_usd;
    const spent = b.spent_usd ?? b.spent ?? b.cost_usd ?? 0;
    const ratio = limit ? spent / limit : 0;
    const state = b.state ?? b.status ?? (ratio >= 1 ? "over" : "ok");
    const bar = fmt.el("div", { class: `bar ${ratio >= 1 ? "over" : ""}`, role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(ratio * 100)), "aria-label": `${b.name ?? "budget"} used` }, fmt.el("span"));
    bar.firstChild.style.width = `${Math.min(100, Math.round(ratio * 100))}%`;
    return fmt.el("div", { class: "budget" },
      fmt.el("span", { text: `${b.name ?? b.id ?? "budget"}${b.period ? ` (${b.period})` : ""}` }),
      bar,
      fmt.el("span", { class: ratio >= 1 ? "bad" : null, text: `${fmt.usd(spent)} of ${fmt.usd(limit)} · ${state}` }));
  }));
}
