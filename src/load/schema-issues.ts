// Schema findings in people's words: the value found, what is allowed, did-you-mean for unknown keys.
import type { z } from "zod";
import type { Diagnostic } from "../errors.js";
import {
  BridgedNetworkSchema,
  BridgeNetworkSchema,
  HostSchema,
  ImpairSchema,
  NicSchema,
  QemuSchema,
  TopologySchema,
  UserNetworkSchema,
  VmSchema,
} from "../model/schema.js";
import type { PathSegment } from "./parse.js";

/** Reports one finding at a field path. */
export type Emit = (
  path: PathSegment[],
  message: string,
  severity?: Diagnostic["severity"],
  which?: "value" | "key",
) => void;

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = data;
  for (const seg of path) {
    if (v === null || typeof v !== "object" || !Object.hasOwn(v, seg)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

export function show(v: unknown): string {
  if (v === undefined) return "nothing";
  let s: string;
  try {
    s = typeof v === "string" ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** The keys allowed in the mapping at `path`, for did-you-mean hints. */
function keysAt(path: readonly PropertyKey[], data: unknown): string[] {
  const shapeKeys = (s: { shape: object }) => Object.keys(s.shape);
  if (path.length === 0) return shapeKeys(TopologySchema);
  if (path[0] === "networks" && path.length === 2) {
    const type = (valueAt(data, path) as { type?: unknown } | undefined)?.type;
    if (type === "user") return shapeKeys(UserNetworkSchema);
    if (type === "bridged") return shapeKeys(BridgedNetworkSchema);
    return shapeKeys(BridgeNetworkSchema);
  }
  if (path[0] === "vms" && path.length === 2) return shapeKeys(VmSchema);
  if (path[0] === "hosts" && path.length === 2) return shapeKeys(HostSchema);
  if (path[0] === "vms" && path[2] === "nics" && path.length === 4) return shapeKeys(NicSchema);
  if (path[0] === "vms" && path[2] === "qemu" && path.length === 3) return shapeKeys(QemuSchema);
  if (path.at(-1) === "impair") return shapeKeys(ImpairSchema);
  return [];
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

export function didYouMean(word: string, options: readonly string[]): string | null {
  // Names are at most 63 characters: a longer word is no typo, and comparing it would cost time.
  if (word.length > 100) return null;
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const o of options) {
    const d = editDistance(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = o;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

export function schemaIssue(issue: z.core.$ZodIssue, data: unknown, emit: Emit): void {
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  const found = valueAt(data, path);
  switch (issue.code) {
    case "unrecognized_keys": {
      const allowed = keysAt(path, data).filter((k) => k !== "$schema");
      for (const key of issue.keys) {
        const guess = didYouMean(key, allowed);
        emit(
          [...path, key],
          `unknown key ${show(key)}${guess ? ` (did you mean "${guess}"?)` : ""}; allowed here: ${allowed.join(", ")}`,
          "error",
          "key",
        );
      }
      return;
    }
    case "invalid_union": {
      // zod 4 reports a bad discriminator at the `type` field itself; older shapes at the network.
      const atType = path.at(-1) === "type";
      const type = atType ? found : (found as { type?: unknown } | undefined)?.type;
      emit(
        atType || type === undefined ? path : [...path, "type"],
        type === undefined
          ? `required field is missing: a network needs a type, one of "user", "bridge", "bridged"`
          : `network type ${show(type)} is not one of "user", "bridge", "bridged"`,
      );
      return;
    }
    case "invalid_key": {
      emit(
        path,
        `the name ${show(path.at(-1))} is not allowed: ${issue.issues[0]?.message ?? issue.message}`,
        "error",
        "key",
      );
      return;
    }
    case "invalid_type": {
      if (found === undefined) emit(path, `required field is missing (expected ${issue.expected})`);
      else emit(path, `found ${show(found)}; expected ${issue.expected}`);
      return;
    }
    case "invalid_value": {
      emit(path, `found ${show(found)}; allowed: ${issue.values.map((v) => show(v)).join(", ")}`);
      return;
    }
    default:
      emit(path, `found ${show(found)}: ${issue.message}`);
  }
}
