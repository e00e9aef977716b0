// tc commands of an impaired NIC (pure): netem and tbf on the tap's egress (frames to the VM), and the
// tap's ingress redirected to an ifb whose egress carries the same qdiscs (frames from the VM).
import { type Impairment, needsNetem } from "../model/impair.js";

/**
 * qnet's qdiscs carry this handle (0x5154, "QT"): the mark by which it knows its own root qdiscs, as
 * ifalias marks its links. The tbf under a netem is 5155:, and the ingress filter has priority 5154.
 */
export const QDISC_HANDLE = "5154:";
export const CHILD_HANDLE = "5155:";
export const FILTER_PREF = 5154;
/** netem's queue: 1000 frames by default, too few for a long delay at a high rate. */
export const NETEM_LIMIT = 10_000;
/** tbf's queue: how long a frame may wait for its tokens before it is dropped. */
export const TBF_LATENCY_MS = 200;

const SAFE = /^[A-Za-z0-9_.:/@%-]+$/;

/** One `tc -batch` line from tokens; refuses anything that could split or comment a line. */
export function tcLine(...tokens: string[]): string {
  for (const t of tokens) {
    if (!SAFE.test(t)) throw new Error(`unsafe token for tc -batch: ${JSON.stringify(t)}`);
  }
  return tokens.join(" ");
}

const pct = (p: number) => `${p}%`;

/** netem's options for an impairment (delay first: jitter and reorder follow it). */
export function netemArgs(i: Impairment): string[] {
  const a = ["limit", String(NETEM_LIMIT)];
  if (i.delayUs !== undefined) {
    a.push("delay", `${i.delayUs}us`);
    if (i.jitterUs !== undefined) a.push(`${i.jitterUs}us`);
  }
  if (i.lossPct !== undefined) a.push("loss", pct(i.lossPct));
  if (i.duplicatePct !== undefined) a.push("duplicate", pct(i.duplicatePct));
  if (i.corruptPct !== undefined) a.push("corrupt", pct(i.corruptPct));
  if (i.reorderPct !== undefined) a.push("reorder", pct(i.reorderPct));
  return a;
}

/**
 * tbf's burst in bytes: 20 ms of tokens at the rate, and never less than a few full frames (a
 * smaller bucket could not pass one frame).
 */
export function tbfBurst(rateBit: number): number {
  return Math.max(Math.ceil(rateBit / 8 / 50), 4 * 1514);
}

export function tbfArgs(rateBit: number): string[] {
  return [
    "rate",
    `${rateBit}bit`,
    "burst",
    String(tbfBurst(rateBit)),
    "latency",
    `${TBF_LATENCY_MS}ms`,
  ];
}

/** The qdiscs that carry an impairment on one device's egress (replacing whatever root it has). */
export function rootQdiscLines(dev: string, i: Impairment, hasRoot: boolean): string[] {
  const lines = hasRoot ? [tcLine("qdisc", "del", "dev", dev, "root")] : [];
  if (needsNetem(i)) {
    lines.push(
      tcLine("qdisc", "add", "dev", dev, "root", "handle", QDISC_HANDLE, "netem", ...netemArgs(i)),
    );
    if (i.rateBit !== undefined)
      lines.push(
        tcLine(
          "qdisc",
          "add",
          "dev",
          dev,
          "parent",
          `${QDISC_HANDLE}1`,
          "handle",
          CHILD_HANDLE,
          "tbf",
          ...tbfArgs(i.rateBit),
        ),
      );
  } else if (i.rateBit !== undefined) {
    lines.push(
      tcLine(
        "qdisc",
        "add",
        "dev",
        dev,
        "root",
        "handle",
        QDISC_HANDLE,
        "tbf",
        ...tbfArgs(i.rateBit),
      ),
    );
  }
  return lines;
}

/** Redirect every frame the VM sends (the tap's ingress) to the ifb, whose egress is shaped. */
export function redirectLines(tap: string, ifb: string, hasIngress: boolean): string[] {
  return [
    ...(hasIngress ? [tcLine("qdisc", "del", "dev", tap, "ingress")] : []),
    tcLine("qdisc", "add", "dev", tap, "ingress"),
    tcLine(
      "filter",
      "add",
      "dev",
      tap,
      "parent",
      "ffff:",
      "pref",
      String(FILTER_PREF),
      "protocol",
      "all",
      "u32",
      "match",
      "u32",
      "0",
      "0",
      "action",
      "mirred",
      "egress",
      "redirect",
      "dev",
      ifb,
    ),
  ];
}
