// Number formatting: thousands separators everywhere; money to the cent for
// totals and to a hundredth of a cent for a single call; null money is unpriced.
const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const dec1 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const usd2 = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });
const usd4 = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 4, maximumFractionDigits: 4 });

export const UNPRICED = "—";

export function n(v) { return v == null ? UNPRICED : int.format(v); }
export function rate(v) { return v == null ? UNPRICED : dec1.format(v); }
export function usd(v) { return v == null ? UNPRICED : usd2.format(v); }
export function usdCall(v) { return v == null ? UNPRICED : usd4.format(v); }
export function pct(v) { return v == null ? UNPRICED : `${dec1.format(v * 100)} %`; }
export function ms(v) { return v == null ? UNPRICED : `${int.format(v)} ms`; }

export function time(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function dateTime(iso) {
  if (!iso) return UNPRICED;
  const d = new Date(iso);
  return d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}
