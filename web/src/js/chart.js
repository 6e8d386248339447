// Cost over time, stacked by a dimension, drawn by uPlot as bars. uPlot does
// not stack by itself: series k holds the sum of groups k..n, drawn largest
// first, so each band shows one group; the readout shows the group's own value.
import uPlot from "/ui/vendor/uPlot.esm.js";
import * as fmt from "./fmt.js";
import { BUCKET_MS } from "./state.js";

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];
const MAX_GROUPS = 8;

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

export class CostChart {
  constructor(root, readout, legend, onPick) {
    this.root = root; this.readout = readout; this.legend = legend; this.onPick = onPick;
    this.plot = null; this.raw = []; this.names = [];
    new ResizeObserver(() => this.plot?.setSize(this.size())).observe(root);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.rebuild());
  }

  size() { return { width: Math.max(280, this.root.clientWidth), height: this.root.clientWidth < 500 ? 200 : 260 }; }

  // usage: the /api/usage answer; win: {lo, hi, bucket}.
  update(usage, win) {
    const width = BUCKET_MS[win.bucket];
    const first = Math.floor(win.lo / width) * width;
    const xs = [];
    for (let t = first; t < win.hi; t += width) xs.push(t / 1000);
    const index = new Map(xs.map((x, i) => [x * 1000, i]));
    const groups = usage.series.map((s) => ({ name: s.group ?? "(none)", group: s.group, cost: 0, points: s.points }));
    for (const g of groups) {
      g.values = new Array(xs.length).fill(0);
      for (const p of g.points) {
        const i = index.get(Date.parse(p.t));
        if (i !== undefined && p.cost_usd != null) { g.values[i] += p.cost_usd; g.cost += p.cost_usd; g.priced = true; }
      }
    }
    groups.sort((a, b) => b.cost - a.cost || a.name.localeCompare(b.name));
    let shown = groups;
    if (groups.length > MAX_GROUPS) {
      shown = groups.slice(0, MAX_GROUPS - 1);
      const rest = groups.slice(MAX_GROUPS - 1);
      const other = { name: `other (${rest.length})`, group: undefined, cost: 0, priced: false, values: new Array(xs.length).fill(0) };
      for (const g of rest) { other.cost += g.cost; other.priced ||= g.priced; g.values.forEach((v, i) => { other.values[i] += v; }); }
      shown.push(other);
    }
    this.raw = shown.map((g) => g.values);
    this.names = shown;
    const stacked = shown.map((_, k) => xs.map((__, i) => {
      let s = 0;
      for (let j = k; j < shown.length; j++) s += this.raw[j][i];
      return s;
    }));
    const sameShape = this.plot && this.data && this.data.length === stacked.length + 1
      && this.key === shown.map((g) => g.name).join("\n");
    this.key = shown.map((g) => g.name).join("\n");
    this.data = [xs, ...stacked];
    this.bucket = win.bucket;
    // Live refreshes usually keep the same groups: new data only, no new chart.
    if (sameShape) this.plot.setData(this.data); else this.rebuild();
    this.renderLegend();
  }

  rebuild() {
    if (!this.data) return;
    this.plot?.destroy();
    const fg = css("--muted"), grid = css("--line");
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const bars = uPlot.paths.bars({ size: [0.9, 40], gap: 1 });
    const opts = {
      ...this.size(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.05 : 1] } },
      axes: [axis, { ...axis, size: 70, values: (u, ticks) => ticks.map((v) => fmt.usd(v)) }],
      series: [{}, ...this.names.map((g, k) => ({
        label: g.name,
        stroke: PALETTE[k % PALETTE.length],
        fill: PALETTE[k % PALETTE.length],
        width: 0,
        paths: bars,
        points: { show: false },
      }))],
      hooks: { setCursor: [(u) => this.showReadout(u.cursor.idx)] },
    };
    this.plot = new uPlot(opts, this.data, this.root);
  }

  showReadout(idx) {
    if (idx == null) { this.readout.textContent = ""; return; }
    const t = new Date(this.data[0][idx] * 1000);
    const when = this.bucket === "day" ? t.toLocaleDateString() : t.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    const parts = this.names.map((g, k) => `${g.name} ${fmt.usd(this.raw[k][idx])}`).filter((_, k) => this.raw[k][idx] > 0);
    this.readout.textContent = `${when}: ${parts.length ? parts.join(" · ") : "no priced calls"}`;
  }

  renderLegend() {
    this.legend.replaceChildren(...this.names.map((g, k) => {
      const swatch = fmt.el("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.background = PALETTE[k % PALETTE.length];
      const label = `${g.name} ${g.priced ? fmt.usd(g.cost) : "unpriced"}`;
      if (g.group === undefined) return fmt.el("li", {}, swatch, label);
      const button = fmt.el("button", { type: "button", title: "Filter by this", onclick: () => this.onPick(g.group) }, swatch, label);
      return fmt.el("li", {}, button);
    }));
  }
}
