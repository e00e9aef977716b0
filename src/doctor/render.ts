// Doctor output for people (a table, each problem followed by its fix) and the exit code.
import { EXIT } from "../errors.js";
import type { CheckResult, CheckStatus, DoctorReport } from "./types.js";

const MARK: Record<CheckStatus, string> = { pass: "ok", warn: "WARN", fail: "FAIL", skip: "skip" };

/** Word-wrap `text` to `width` columns (long words stay whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let cur = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (cur && cur.length + 1 + word.length > width) {
      lines.push(cur);
      cur = word;
    } else {
      cur = cur ? `${cur} ${word}` : word;
    }
  }
  if (cur) lines.push(cur);
  return lines.length ? lines : [""];
}

/** Count of checks per status. */
export function summarize(report: DoctorReport): Record<CheckStatus, number> {
  const n: Record<CheckStatus, number> = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of report.checks) n[c.status]++;
  return n;
}

/** A plain-text table: status, title, meaning; `fix:` and `fixed:` lines under the check they belong to. */
export function renderDoctorTable(report: DoctorReport, width = 100): string {
  const statusW = Math.max(...Object.values(MARK).map((m) => m.length));
  const titleW = Math.min(32, Math.max(5, ...report.checks.map((c) => c.title.length)));
  const indent = statusW + 2 + titleW + 2;
  const textW = Math.max(30, width - indent);
  const pad = " ".repeat(indent);
  const out: string[] = [`${"STATUS".padEnd(statusW)}  ${"CHECK".padEnd(titleW)}  DETAIL`];
  const row = (c: CheckResult) => {
    const [first, ...rest] = wrap(c.detail, textW);
    out.push(`${MARK[c.status].padEnd(statusW)}  ${c.title.padEnd(titleW)}  ${first}`);
    for (const l of rest) out.push(pad + l);
    if (c.fixed)
      for (const [i, l] of wrap(c.fixed, textW - 7).entries())
        out.push(`${pad}${i ? "       " : "fixed: "}${l}`);
    if (c.fix && c.status !== "pass" && c.status !== "skip") {
      for (const [i, l] of wrap(c.fix, textW - 5).entries())
        out.push(`${pad}${i ? "     " : "fix: "}${l}`);
    }
  };
  for (const c of report.checks) row(c);
  const s = summarize(report);
  out.push("", `${s.pass} ok, ${s.warn} warning(s), ${s.fail} failure(s), ${s.skip} skipped`);
  return `${out.join("\n")}\n`;
}

/** Non-zero (EXIT.failure) when any check failed; warnings do not fail. */
export function exitCodeFor(report: DoctorReport): number {
  return report.checks.some((c) => c.status === "fail") ? EXIT.failure : EXIT.ok;
}
