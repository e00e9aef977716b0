// `qnet check`: the connectivity table for people (pure).
import type { PairResult, PairStatus } from "./check-pairs.js";

export interface CheckReport {
  lab: string;
  netns: string | null;
  /** No pair failed (warnings and skips do not count). */
  ok: boolean;
  summary: Record<PairStatus, number>;
  pairs: PairResult[];
  /** doctor's warn/fail findings, when failures made qnet look (empty otherwise). */
  doctor: { id: string; status: string; detail: string; fix?: string }[];
}

export function summarize(pairs: PairResult[]): Record<PairStatus, number> {
  const s: Record<PairStatus, number> = { pass: 0, fail: 0, warn: 0, skip: 0 };
  for (const p of pairs) s[p.status]++;
  return s;
}

function target(p: PairResult): string {
  switch (p.kind) {
    case "vm-vm":
    case "host-vm":
      return `${p.to} ${p.address || "(no address)"}`;
    case "vm-gateway":
      return `gateway ${p.address}`;
    case "forward": {
      const f = p.forward!;
      return `forward ${f.proto} ${p.address}:${f.hostPort} → ${f.targetVm ?? "?"}:${f.guestPort}`;
    }
    case "nat":
      return `NAT ${p.address}`;
  }
}

function latency(p: PairResult): string {
  if (p.latencyMs === null) return "";
  return `${p.latencyMs < 10 ? p.latencyMs.toFixed(2) : p.latencyMs.toFixed(1)} ms`;
}

/** One row per pair; every failure (and warning) followed by what happened and its likely cause. */
export function renderCheckTable(r: CheckReport): string {
  const head = ["FROM", "TO", "NETWORK", "RESULT", "LATENCY"];
  const rows = r.pairs.map((p) => [
    p.from,
    target(p),
    p.network ?? "",
    p.status.toUpperCase(),
    latency(p),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i]!.length)));
  const line = (x: string[]) =>
    x
      .map((c, i) => (i < x.length - 1 ? c.padEnd(widths[i]!) : c))
      .join("  ")
      .trimEnd();
  const out = [
    `lab ${r.lab}${r.netns ? ` (netns ${r.netns})` : ""}: ${r.pairs.length} pairs, ${r.summary.pass} pass, ${r.summary.fail} fail${r.summary.warn ? `, ${r.summary.warn} warn` : ""}${r.summary.skip ? `, ${r.summary.skip} skipped` : ""}`,
    line(head),
  ];
  r.pairs.forEach((p, i) => {
    out.push(line(rows[i]!));
    if (p.status === "fail") {
      out.push(`    ✗ ${p.detail}`);
      if (p.cause) out.push(`      cause: ${p.cause}`);
    } else if (p.status === "warn" || p.status === "skip") {
      out.push(`    ! ${p.detail}`);
    }
  });
  return `${out.join("\n")}\n`;
}
