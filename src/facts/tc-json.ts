// Parses `tc -json qdisc show` and `tc -json filter show dev X ingress` into qdiscs and redirect filters,
// and reads an impairment back from a netem/tbf pair (the inverse of src/render/tc.ts).
import type { Impairment } from "../model/impair.js";
import { parseJsonArray } from "./ip-json.js";
import type { TcFilter, TcQdisc } from "./types.js";

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | null =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : null;
const num = (v: unknown): number | null => (typeof v === "number" ? v : null);
const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);

/** `tc -json qdisc show` (every device of the namespace). */
export function parseQdiscs(text: string): TcQdisc[] {
  return parseJsonArray(text, "tc -json qdisc show").flatMap((q): TcQdisc[] => {
    const dev = str(q.dev);
    const kind = str(q.kind);
    if (!dev || !kind) return [];
    return [
      {
        dev,
        kind,
        handle: str(q.handle) ?? "0:",
        parent: str(q.parent),
        root: q.root === true,
        options: obj(q.options) ?? {},
      },
    ];
  });
}

/** One device's ingress filters, from `tc -json filter show dev X ingress`. */
export function parseFilters(text: string): TcFilter[] {
  return parseJsonArray(text, "tc -json filter show").flatMap((f): TcFilter[] => {
    const options = obj(f.options);
    const actions = Array.isArray(options?.actions) ? options.actions : null;
    // u32 lists its hash table and node entries too: only the entry with actions is a filter.
    if (!actions) return [];
    const redirect = actions.map(obj).find((a) => a?.kind === "mirred");
    return [
      {
        pref: num(f.pref),
        kind: str(f.kind) ?? "",
        redirectTo: redirect && redirect.mirred_action === "redirect" ? str(redirect.to_dev) : null,
      },
    ];
  });
}

/**
 * The outputs of one `tc -json -batch` of `filter show dev X ingress` commands: one JSON array per line,
 * in the order of the devices asked for.
 */
export function parseFilterBatch(text: string, devs: string[]): Map<string, TcFilter[]> {
  const lines = text.split("\n").filter((l) => l.trim().startsWith("["));
  const out = new Map<string, TcFilter[]>();
  devs.forEach((d, i) => {
    out.set(d, lines[i] ? parseFilters(lines[i]) : []);
  });
  return out;
}

const us = (seconds: unknown) => {
  const s = num(seconds);
  return s === null ? undefined : Math.round(s * 1_000_000);
};
const pct = (frac: unknown) => {
  const f = num(frac);
  return f === null ? undefined : Math.round(f * 100 * 10_000) / 10_000;
};

/** What a device's root qdisc is, as far as impairments go. */
export interface ObservedRoot {
  /** none: the kernel's default; netem/tbf: qnet's (its handle); foreign: any other root qdisc. */
  root: "none" | "netem" | "tbf" | "foreign";
  /** What qnet's qdiscs apply (empty for none and foreign). */
  impairment: Impairment;
  /** For people: the root qdisc as found ("fq_codel 1:", "netem 5154: with a sfq under it"). */
  detail: string;
}

/**
 * The root qdisc of a device and the impairment qnet's netem (and the tbf under it) or tbf applies.
 * netem prints nothing for a zero delay: `delay: 0ms` reads back as a netem without a delay.
 */
export function observedRoot(
  qdiscs: TcQdisc[],
  dev: string,
  handle: string,
  childHandle: string,
): ObservedRoot {
  const mine = qdiscs.filter((q) => q.dev === dev);
  const root = mine.find((q) => q.root && q.handle !== "0:");
  if (!root) return { root: "none", impairment: {}, detail: "no qdisc of qnet's" };
  const foreign = (detail: string): ObservedRoot => ({ root: "foreign", impairment: {}, detail });
  if (root.handle !== handle || (root.kind !== "netem" && root.kind !== "tbf"))
    return foreign(`root qdisc ${root.kind} ${root.handle} (not qnet's)`);
  const out: Impairment = {};
  const tbfRate = (q: TcQdisc) => {
    const r = num(q.options.rate);
    return r === null ? undefined : Math.round(r * 8);
  };
  if (root.kind === "tbf") {
    const r = tbfRate(root);
    if (r !== undefined) out.rateBit = r;
    return { root: "tbf", impairment: out, detail: "tbf" };
  }
  const o = root.options;
  const delay = obj(o.delay);
  const set = <K extends keyof Impairment>(k: K, v: number | undefined) => {
    if (v !== undefined && v !== 0) out[k] = v;
  };
  set("delayUs", us(delay?.delay));
  set("jitterUs", us(delay?.jitter));
  set("lossPct", pct(obj(o["loss-random"])?.loss));
  set("duplicatePct", pct(obj(o.duplicate)?.duplicate));
  set("corruptPct", pct(obj(o.corrupt)?.corrupt));
  set("reorderPct", pct(obj(o.reorder)?.reorder));
  const child = mine.find((q) => q.parent === `${handle}1`);
  if (child) {
    if (child.kind !== "tbf" || child.handle !== childHandle)
      return foreign(`netem ${handle} with a ${child.kind} ${child.handle} under it (not qnet's)`);
    const r = tbfRate(child);
    if (r !== undefined) out.rateBit = r;
  }
  return { root: "netem", impairment: out, detail: child ? "netem with tbf" : "netem" };
}
