// Link impairments (delay, jitter, loss, rate, duplicate, corrupt, reorder): units parsed and printed
// once, for the validator, the resolver, the tc renderer, status, diagrams and `qnet impair`.

/** Impairments as a topology file (or `qnet impair`) writes them: values with their units. */
export interface ImpairSpec {
  delay?: string | number | undefined;
  jitter?: string | number | undefined;
  loss?: string | number | undefined;
  rate?: string | number | undefined;
  duplicate?: string | number | undefined;
  corrupt?: string | number | undefined;
  reorder?: string | number | undefined;
}

/** Resolved impairments, applied to the frames in each direction of a NIC. Absent: not impaired. */
export interface Impairment {
  /** One-way delay in microseconds. */
  delayUs?: number;
  jitterUs?: number;
  /** Percentages, 0 to 100. */
  lossPct?: number;
  duplicatePct?: number;
  corruptPct?: number;
  reorderPct?: number;
  /** Bits per second. */
  rateBit?: number;
}

export const IMPAIR_FIELDS = [
  "delay",
  "jitter",
  "loss",
  "rate",
  "duplicate",
  "corrupt",
  "reorder",
] as const;
export type ImpairField = (typeof IMPAIR_FIELDS)[number];

type Parsed = { ok: true; value: number } | { ok: false; reason: string };

const NUM = "(\\d+(?:\\.\\d+)?)";
const TIME_RE = new RegExp(`^${NUM}\\s*(us|µs|ms|s)$`);
const PCT_RE = new RegExp(`^${NUM}\\s*%$`);
const RATE_RE = new RegExp(`^${NUM}\\s*(bit|kbit|mbit|gbit)$`, "i");
const BYTES_RATE_RE = /^\d+(?:\.\d+)?\s*([kmg]?bps|[kmg]?b\/s)$/i;

/** Longest delay or jitter accepted: netem keeps time in 32-bit ticks, and a minute is plenty. */
export const MAX_TIME_US = 60_000_000;
/** Rates from 1 kbit/s to 100 gbit/s (tbf's burst arithmetic below 1 kbit/s is meaningless). */
export const MIN_RATE_BIT = 1_000;
export const MAX_RATE_BIT = 100_000_000_000;

export function parseTime(v: string | number): Parsed {
  if (typeof v === "number")
    return { ok: false, reason: `${v} has no unit: write ${v}ms (units: us, ms, s)` };
  const m = TIME_RE.exec(v.trim());
  if (!m) return { ok: false, reason: "expected a time such as 40ms, 1.5s or 500us" };
  const scale = { us: 1, µs: 1, ms: 1_000, s: 1_000_000 }[m[2] as "us" | "µs" | "ms" | "s"];
  const us = Math.round(Number(m[1]) * scale);
  if (us > MAX_TIME_US) return { ok: false, reason: "at most 60s" };
  return { ok: true, value: us };
}

export function parsePercent(v: string | number): Parsed {
  if (typeof v === "number")
    return { ok: false, reason: `${v} has no unit: write ${v}% (a percentage of frames)` };
  const m = PCT_RE.exec(v.trim());
  if (!m) return { ok: false, reason: "expected a percentage such as 1% or 0.5%" };
  const pct = Number(m[1]);
  if (pct > 100) return { ok: false, reason: "at most 100%" };
  return { ok: true, value: Math.round(pct * 10_000) / 10_000 };
}

export function parseRate(v: string | number): Parsed {
  if (typeof v === "number")
    return { ok: false, reason: `${v} has no unit: write ${v}mbit (units: bit, kbit, mbit, gbit)` };
  const t = v.trim();
  if (BYTES_RATE_RE.test(t))
    return {
      ok: false,
      reason:
        "rates are written in bits per second (kbit, mbit, gbit): tc reads `bps` as bytes per second, so 1mbps would be 8 mbit/s; write 8mbit for 1 MB/s",
    };
  const m = RATE_RE.exec(t);
  if (!m) return { ok: false, reason: "expected a rate such as 10mbit, 512kbit or 1gbit" };
  const unit = m[2]!.toLowerCase() as "bit" | "kbit" | "mbit" | "gbit";
  const bit = Math.round(Number(m[1]) * { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 }[unit]);
  if (bit < MIN_RATE_BIT) return { ok: false, reason: "at least 1kbit" };
  if (bit > MAX_RATE_BIT) return { ok: false, reason: "at most 100gbit" };
  return { ok: true, value: bit };
}

const PARSERS: Record<ImpairField, (v: string | number) => Parsed> = {
  delay: parseTime,
  jitter: parseTime,
  loss: parsePercent,
  rate: parseRate,
  duplicate: parsePercent,
  corrupt: parsePercent,
  reorder: parsePercent,
};

const KEYS: Record<ImpairField, keyof Impairment> = {
  delay: "delayUs",
  jitter: "jitterUs",
  loss: "lossPct",
  rate: "rateBit",
  duplicate: "duplicatePct",
  corrupt: "corruptPct",
  reorder: "reorderPct",
};

export interface ImpairFinding {
  field: ImpairField;
  message: string;
}

/**
 * Check a spec: every value's unit and range, and the combinations netem refuses (jitter and reorder
 * need a delay). Returns the findings, each for one field (empty when the spec is valid).
 */
export function checkImpairSpec(spec: ImpairSpec): ImpairFinding[] {
  const out: ImpairFinding[] = [];
  for (const f of IMPAIR_FIELDS) {
    const v = spec[f];
    if (v === undefined) continue;
    const r = PARSERS[f](v);
    if (!r.ok) out.push({ field: f, message: `found ${JSON.stringify(v)}: ${r.reason}` });
  }
  if (out.length > 0) return out;
  const i = parseImpairSpec(spec);
  if (i.jitterUs !== undefined && i.delayUs === undefined)
    out.push({ field: "jitter", message: "jitter varies a delay: give `delay` too" });
  if (i.reorderPct !== undefined && !i.delayUs)
    out.push({
      field: "reorder",
      message:
        "netem reorders by sending some frames at once while the rest wait: give a `delay` above 0",
    });
  if (i.jitterUs !== undefined && i.delayUs !== undefined && i.jitterUs > i.delayUs)
    out.push({
      field: "jitter",
      message: `jitter ${formatTime(i.jitterUs)} is larger than the delay ${formatTime(i.delayUs)}: a frame cannot leave before it arrived`,
    });
  return out;
}

/** The impairment of a checked spec (fields absent from the spec stay absent). */
export function parseImpairSpec(spec: ImpairSpec): Impairment {
  const out: Impairment = {};
  for (const f of IMPAIR_FIELDS) {
    const v = spec[f];
    if (v === undefined) continue;
    const r = PARSERS[f](v);
    if (!r.ok) throw new Error(`internal: unchecked ${f} ${JSON.stringify(v)}`);
    out[KEYS[f]] = r.value;
  }
  return out;
}

/** A NIC's impairment: its own fields over its network's defaults; null when neither sets any. */
export function mergeImpairments(
  network: Impairment | null | undefined,
  nic: Impairment | null | undefined,
): Impairment | null {
  const merged: Impairment = { ...(network ?? {}), ...(nic ?? {}) };
  return isEmpty(merged) ? null : sortKeys(merged);
}

export const isEmpty = (i: Impairment | null | undefined) => !i || Object.keys(i).length === 0;

const ORDER: (keyof Impairment)[] = [
  "delayUs",
  "jitterUs",
  "lossPct",
  "duplicatePct",
  "corruptPct",
  "reorderPct",
  "rateBit",
];

/** The same impairment with its keys in one order (stable JSON, stable comparisons). */
export function sortKeys(i: Impairment): Impairment {
  const out: Impairment = {};
  for (const k of ORDER) if (i[k] !== undefined) out[k] = i[k];
  return out;
}

export function sameImpairment(a: Impairment | null, b: Impairment | null): boolean {
  return JSON.stringify(sortKeys(a ?? {})) === JSON.stringify(sortKeys(b ?? {}));
}

/** netem is needed for everything but a pure rate (which tbf shapes alone). */
export const needsNetem = (i: Impairment) =>
  i.delayUs !== undefined ||
  i.jitterUs !== undefined ||
  i.lossPct !== undefined ||
  i.duplicatePct !== undefined ||
  i.corruptPct !== undefined ||
  i.reorderPct !== undefined;

const trim = (n: number) => String(Math.round(n * 10_000) / 10_000);

export function formatTime(us: number): string {
  if (us !== 0 && us % 1_000_000 === 0) return `${us / 1_000_000}s`;
  if (us % 1_000 === 0) return `${us / 1_000}ms`;
  return `${us}us`;
}

export function formatRate(bit: number): string {
  for (const [unit, scale] of [
    ["gbit", 1e9],
    ["mbit", 1e6],
    ["kbit", 1e3],
  ] as const) {
    if (bit >= scale && bit % scale === 0) return `${bit / scale}${unit}`;
  }
  return bit >= 1e6 ? `${trim(bit / 1e6)}mbit` : `${bit}bit`;
}

export const formatPercent = (p: number) => `${trim(p)}%`;

/** The impairment in the file's own words: `delay 40ms, jitter 5ms, loss 1%, rate 10mbit`. */
export function describeImpairment(i: Impairment | null | undefined): string {
  if (isEmpty(i)) return "none";
  return impairmentSpec(i!)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
}

/** The impairment as [field, value-with-unit] pairs, in the file's field order. */
export function impairmentSpec(i: Impairment): [ImpairField, string][] {
  const out: [ImpairField, string][] = [];
  if (i.delayUs !== undefined) out.push(["delay", formatTime(i.delayUs)]);
  if (i.jitterUs !== undefined) out.push(["jitter", formatTime(i.jitterUs)]);
  if (i.lossPct !== undefined) out.push(["loss", formatPercent(i.lossPct)]);
  if (i.rateBit !== undefined) out.push(["rate", formatRate(i.rateBit)]);
  if (i.duplicatePct !== undefined) out.push(["duplicate", formatPercent(i.duplicatePct)]);
  if (i.corruptPct !== undefined) out.push(["corrupt", formatPercent(i.corruptPct)]);
  if (i.reorderPct !== undefined) out.push(["reorder", formatPercent(i.reorderPct)]);
  return out;
}

/** Why a network type cannot carry impairments, or null when it can. */
export function impairRefusal(net: {
  type: "user" | "bridge" | "bridged";
  mode?: string;
}): string | null {
  if (net.type === "user")
    return "QEMU's user networking has no host device whose queue could delay or drop frames (and QEMU's user stack has no such option); put this VM on a `bridge` network to shape its link";
  if (net.type === "bridged" && net.mode === "macvtap")
    return "a macvtap hands frames between the VM and the LAN without a host-side queue in both directions; use `mode: bridge` (a tap on a bridge) to shape this link";
  return null;
}
