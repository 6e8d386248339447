// The live feed. Events may arrive at hundreds per second: they are queued and
// drawn once per animation frame (only the newest MAX_ROWS of a burst are
// built), the table is capped at MAX_ROWS, and the full event is kept in a
// WeakMap for the detail dialog rather than in the DOM.
import * as fmt from "./fmt.js";

const MAX_ROWS = 200;
const COLUMNS = [
  ["Time", "text"], ["Service / process", "text"], ["Provider / model", "text"],
  ["Input", ""], ["Output", ""], ["Cache read", ""], ["Cache write", ""], ["Reasoning", ""],
  ["Cost", ""], ["Duration", ""], ["TTFT", ""], ["Status", ""], ["Usage", "text"],
];

export class Feed {
  constructor(table, rateEl, pauseButton, dialog) {
    this.table = table; this.rateEl = rateEl; this.dialog = dialog;
    this.pending = []; this.scheduled = false; this.paused = false; this.events = new WeakMap();
    this.arrivals = []; this.matches = () => true;
    table.append(
      fmt.el("caption", { class: "sr-only", text: "Newest calls first; select one for every field." }),
      fmt.el("thead", {}, fmt.el("tr", {}, ...COLUMNS.map(([c, cls]) => fmt.el("th", { scope: "col", class: cls || null, text: c })))),
    );
    this.body = fmt.el("tbody");
    table.append(this.body);
    this.body.addEventListener("click", (e) => this.open(e.target.closest("tr")));
    this.body.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.open(e.target.closest("tr")); } });
    pauseButton.addEventListener("click", () => {
      this.paused = !this.paused;
      pauseButton.setAttribute("aria-pressed", String(this.paused));
      pauseButton.textContent = this.paused ? "Resume" : "Pause";
    });
    setInterval(() => this.showRate(), 1000);
  }

  setFilter(matches) { this.matches = matches; }

  clear() { this.pending = []; this.body.replaceChildren(); }

  // counted: false for calls that did not just arrive (the newest calls shown at load).
  push(event, counted = true) {
    if (counted) this.arrivals.push(performance.now());
    if (this.paused || !this.matches(event)) return;
    this.pending.push(event);
    if (this.pending.length > MAX_ROWS) this.pending.splice(0, this.pending.length - MAX_ROWS);
    if (!this.scheduled) { this.scheduled = true; requestAnimationFrame(() => this.flush()); }
  }

  flush() {
    this.scheduled = false;
    const batch = this.pending; this.pending = [];
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) frag.append(this.row(batch[i]));
    this.body.prepend(frag);
    while (this.body.rows.length > MAX_ROWS) this.body.lastElementChild.remove();
  }

  row(e) {
    const failed = e.status === 0 || e.status >= 400;
    const who = [e.service, e.process].filter(Boolean).join(" / ") || (e.pid != null ? `pid ${e.pid}` : "?");
    const tr = fmt.el("tr", { tabindex: "0", dataset: { id: e.id }, "aria-label": `${e.model ?? "unknown model"} at ${fmt.time(e.started_at)}` },
      fmt.el("td", { class: "text", text: fmt.time(e.started_at) }),
      fmt.el("td", { class: "text", text: who }),
      fmt.el("td", { class: "text", text: `${e.provider} / ${e.model ?? "?"}` }),
      fmt.el("td", { text: fmt.n(e.input_tokens) }),
      fmt.el("td", { text: fmt.n(e.output_tokens) }),
      fmt.el("td", { text: fmt.n(e.cache_read_tokens) }),
      fmt.el("td", { text: fmt.n(e.cache_write_tokens) }),
      fmt.el("td", { text: fmt.n(e.reasoning_tokens) }),
      fmt.el("td", { text: fmt.usdCall(e.cost_usd), title: e.cost_usd == null ? "unpriced" : null }),
      fmt.el("td", { text: fmt.ms(e.duration_ms) }),
      fmt.el("td", { text: fmt.ms(e.ttft_ms) }),
      fmt.el("td", { class: failed ? "bad" : null, text: String(e.status) }),
      fmt.el("td", { class: "text", text: e.usage_source }),
    );
    this.events.set(tr, e);
    return tr;
  }

  open(tr) {
    const e = tr && this.events.get(tr);
    if (!e) return;
    const body = this.dialog.querySelector("dl");
    body.replaceChildren(...Object.entries(e).flatMap(([k, v]) => [
      fmt.el("dt", { text: k }),
      fmt.el("dd", { text: v == null ? "null" : typeof v === "object" ? JSON.stringify(v) : String(v) }),
    ]));
    this.dialog.querySelector("h2").textContent = `${e.provider} / ${e.model ?? "?"} at ${fmt.time(e.started_at)}`;
    this.dialog.showModal();
  }

  showRate() {
    const now = performance.now();
    while (this.arrivals.length && now - this.arrivals[0] > 10_000) this.arrivals.shift();
    this.rateEl.textContent = `${fmt.rate(this.arrivals.length / 10)} calls/s`;
  }
}
