// Validation: the schema pass and the semantic rules, every error collected and located.
import type { z } from "zod";
import type { Diagnostic } from "../errors.js";
import { NAME_RE } from "../model/names.js";
import {
  HostSchema,
  type HostSpec,
  NetworkSchema,
  type Topology,
  TopologySchema,
  VmSchema,
} from "../model/schema.js";
import { formatPath, type Parsed } from "./parse.js";
import { LIMITS, semanticRules } from "./rules.js";
import { type Emit, schemaIssue } from "./schema-issues.js";

export { LIMITS } from "./rules.js";
export { didYouMean, show } from "./schema-issues.js";

export interface Validated {
  topology: Topology | null;
  diagnostics: Diagnostic[];
}

export function validateTopology(parsed: Parsed): Validated {
  const diagnostics: Diagnostic[] = [...parsed.errors];
  const emit: Emit = (path, message, severity = "error", which = "value") => {
    const { line, column } = parsed.locate(path, which);
    diagnostics.push({
      severity,
      file: parsed.file,
      line,
      column,
      path: formatPath(path),
      message,
    });
  };
  if (diagnostics.length > 0) return { topology: null, diagnostics };
  const data = parsed.data;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    emit([], "the file must be a mapping with `name`, `networks` and `vms`");
    return { topology: null, diagnostics };
  }
  const raw = data as Record<string, unknown>;
  for (const [key, limit] of [
    ["vms", LIMITS.vms],
    ["networks", LIMITS.networks],
    ["hosts", LIMITS.hosts],
  ] as const) {
    const v = raw[key];
    if (v && typeof v === "object" && Object.keys(v).length > limit) {
      emit([key], `${Object.keys(v).length} entries; at most ${limit} are accepted`);
      return { topology: null, diagnostics };
    }
  }
  const result = TopologySchema.safeParse(data);
  if (!result.success) {
    for (const issue of result.error.issues) schemaIssue(issue, raw, emit);
    // Every error at once: the rules still run over the networks and VMs whose shape is right.
    semanticRules(partialTopology(raw), emit, {
      networks: new Set(Object.keys(asRecord(raw.networks))),
      vms: new Set(Object.keys(asRecord(raw.vms))),
    });
    return { topology: null, diagnostics };
  }
  const { hosts, ...fields } = result.data;
  const topology: Topology = {
    ...fields,
    networks: new Map(Object.entries(result.data.networks)),
    vms: new Map(Object.entries(result.data.vms)),
    ...(hosts ? { hosts: new Map(Object.entries(hosts)) } : {}),
  };
  semanticRules(topology, emit, null);
  return {
    topology: diagnostics.some((d) => d.severity === "error") ? null : topology,
    diagnostics,
  };
}
const asRecord = (v: unknown): Record<string, unknown> =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/** The entries of a file that failed the schema whose own shape is right, for the semantic rules. */
function partialTopology(raw: Record<string, unknown>): Topology {
  const pick = <T>(v: unknown, schema: z.ZodType<T>): Map<string, T> =>
    new Map(
      Object.entries(asRecord(v)).flatMap(([k, e]): [string, T][] => {
        const r = schema.safeParse(e);
        return NAME_RE.test(k) && r.success ? [[k, r.data]] : [];
      }),
    );
  return {
    name: typeof raw.name === "string" ? raw.name : "lab",
    networks: pick(raw.networks, NetworkSchema),
    vms: pick(raw.vms, VmSchema),
    // Every host the file names counts as known (a host with a bad field is reported by the schema).
    ...(raw.hosts !== undefined
      ? {
          hosts: new Map(
            Object.entries(asRecord(raw.hosts)).flatMap(([k, e]): [string, HostSpec][] => {
              if (!NAME_RE.test(k)) return [];
              const r = HostSchema.safeParse(e);
              return [[k, r.success ? r.data : { address: "" }]];
            }),
          ),
        }
      : {}),
  };
}
