// The check tab: `qnet check`'s pairs as a matrix (from × to), then each failure with its likely cause.
import type { CheckPairView, CheckView } from "../src/ui/protocol";
import { byId, el } from "./api";

const MARK = { pass: "✓", fail: "✗", warn: "!", skip: "–" } as const;

function latency(p: CheckPairView): string {
  if (p.latencyMs === null) return "";
  return ` ${p.latencyMs < 10 ? p.latencyMs.toFixed(2) : p.latencyMs.toFixed(1)} ms`;
}

function badge(p: CheckPairView): HTMLElement {
  const title = `${p.from} → ${p.to}${p.network ? ` on ${p.network}` : ""} ${p.address}: ${p.detail}${p.cause ? `\ncause: ${p.cause}` : ""}`;
  return el(
    "span",
    { class: `pair ${p.status}`, "data-pair-id": p.id, "data-pair-status": p.status, title },
    `${MARK[p.status]}${latency(p)}`,
  );
}

function matrix(r: CheckView): HTMLElement {
  const rowsOrder: string[] = [];
  const cols: string[] = [];
  for (const p of r.pairs) {
    if (!rowsOrder.includes(p.from)) rowsOrder.push(p.from);
    if (!cols.includes(p.column)) cols.push(p.column);
  }
  // The host's row last, as in `qnet check`; VM columns first, in the rows' order.
  rowsOrder.sort((a, b) => Number(a === "host") - Number(b === "host"));
  const rank = (c: string) => (rowsOrder.includes(c) ? rowsOrder.indexOf(c) : rowsOrder.length);
  cols.sort((a, b) => rank(a) - rank(b));
  const head = el("tr", {}, el("th", {}, "from \\ to"), ...cols.map((c) => el("th", {}, c)));
  const body = rowsOrder.map((from) =>
    el(
      "tr",
      {},
      el("th", {}, from),
      ...cols.map((c) => {
        const here = r.pairs.filter((p) => p.from === from && p.column === c);
        return el("td", {}, ...here.map(badge));
      }),
    ),
  );
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

export function showCheckRunning(): void {
  byId("check-summary").textContent = "Checking every pair…";
  byId("check-summary").dataset.state = "running";
}

export function showCheckError(message: string): void {
  const s = byId("check-summary");
  s.textContent = `Check could not run: ${message}`;
  s.dataset.state = "error";
  byId("check-matrix").replaceChildren();
  byId("check-failures").replaceChildren();
}

export function showCheck(r: CheckView): void {
  const s = byId("check-summary");
  const n = r.summary;
  s.replaceChildren(
    el("span", { class: `pill ${r.ok ? "pass" : "fail"}` }, r.ok ? "pass" : "fail"),
    ` ${r.pairs.length} pairs: ${n.pass} pass, ${n.fail} fail${n.warn ? `, ${n.warn} warn` : ""}${n.skip ? `, ${n.skip} skipped` : ""} (${new Date().toLocaleTimeString()})`,
  );
  s.dataset.state = "done";
  byId("check-matrix").replaceChildren(matrix(r));
  const problems = r.pairs.filter((p) => p.status === "fail" || p.status === "warn");
  byId("check-failures").replaceChildren(
    ...problems.map((p) =>
      el(
        "div",
        { class: `failure ${p.status}`, "data-pair-id": p.id },
        el("div", {}, el("b", {}, `${p.from} → ${p.to}`), ` ${p.network ?? ""} ${p.address}`),
        el("div", {}, p.detail),
        ...(p.cause ? [el("div", { class: "cause" }, `likely cause: ${p.cause}`)] : []),
      ),
    ),
    ...r.doctor.map((d) =>
      el(
        "div",
        { class: `failure ${d.status === "warn" ? "warn" : ""}` },
        el("b", {}, `doctor: ${d.id}`),
        ` ${d.detail}`,
        ...(d.fix ? [el("div", { class: "cause" }, `fix: ${d.fix}`)] : []),
      ),
    ),
  );
}
