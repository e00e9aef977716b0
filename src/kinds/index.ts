// The resource kinds, in the order `up` applies them, and the pure plan of a whole lab over them.
// Adding a kind: a module here (desired, observe, diff), its executor in src/engine/executors.ts, a row
// in each table. Nothing else learns about it.
import {
  emptyRequest,
  type Observation,
  type ObserveRequest,
  type ProcessKey,
  processKey,
} from "../facts/types.js";
import { addressKind } from "./address.js";
import { bridgeKind } from "./bridge.js";
import { dnsmasqKind } from "./dnsmasq.js";
import { fdbKind } from "./fdb.js";
import { firewallKind } from "./firewall.js";
import { hostsKind } from "./hosts.js";
import { ifbKind } from "./ifb.js";
import { impairKind } from "./impair.js";
import { macvtapKind } from "./macvtap.js";
import { moduleKind } from "./module.js";
import { netnsKind } from "./netns.js";
import { nftTableKind } from "./nft-table.js";
import { nmUnmanagedKind } from "./nm-unmanaged.js";
import { overlayKind } from "./overlay.js";
import { notRootlessPlan, observedRootlessPlan, runsRootless } from "./rootless.js";
import { seedKind } from "./seed.js";
import { sysctlKind } from "./sysctl.js";
import { tapKind } from "./tap.js";
import type { Action, Kind, KindName, PlanEnv, Verdict } from "./types.js";
import { uplinkKind } from "./uplink.js";
import { vmKind } from "./vm.js";
import { vxlanKind } from "./vxlan.js";

/**
 * Every kind, in apply order: the namespace, kernel features, NetworkManager told to leave the lab's
 * links alone (before any of them exists), the LAN uplink moves, then every link (bridges, their
 * addresses, taps, macvtaps, VXLAN devices, ifbs: one `ip -batch`), the VXLAN devices' forwarding entries
 * (one `bridge -batch`), the impairments on taps and ifbs (one `tc -batch`), the sysctls that need those
 * links, the lab's nft table, accept rules in foreign firewalls, dnsmasq, the hosts file, the disks of
 * image VMs (overlays over cached images, cloud-init seeds), and last the VMs.
 */
// biome-ignore lint/suspicious/noExplicitAny: each row has its own desired type
export const KINDS: readonly Kind<any>[] = [
  netnsKind,
  moduleKind,
  nmUnmanagedKind,
  uplinkKind,
  bridgeKind,
  addressKind,
  tapKind,
  macvtapKind,
  vxlanKind,
  fdbKind,
  ifbKind,
  impairKind,
  sysctlKind,
  nftTableKind,
  firewallKind,
  dnsmasqKind,
  hostsKind,
  overlayKind,
  seedKind,
  vmKind,
];

/** Kinds whose changes are `ip -batch` lines, applied together in one process. */
export const BATCHED: ReadonlySet<KindName> = new Set([
  "bridge",
  "address",
  "tap",
  "macvtap",
  "vxlan",
  "ifb",
]);

export interface LabPlan {
  /** One per object, in kind order: every verdict `status` reports. */
  verdicts: Verdict[];
  /** The actions of all verdicts, in apply order: what `plan` prints and `up` applies. */
  actions: Action[];
  /** Reasons `up` must not change anything. */
  problems: string[];
  notes: string[];
}

/** What the lab's objects want, per kind (computed once for both observing and diffing). */
export function desiredAll(env: PlanEnv): Map<KindName, unknown[]> {
  return new Map(KINDS.map((k) => [k.name, k.desired(env)]));
}

/** What one observation must read for the whole lab (restricted to `only` kinds when given). */
export function observeRequest(
  env: PlanEnv,
  desired = desiredAll(env),
  only?: ReadonlySet<KindName>,
): ObserveRequest {
  const req = emptyRequest();
  const procs = new Map<string, ProcessKey>();
  for (const k of KINDS) {
    if (only && !only.has(k.name)) continue;
    if (env.rootless && !runsRootless(k.name)) continue;
    const r = k.observe(desired.get(k.name)!, env);
    req.links ||= !!r.links;
    req.nft ||= !!r.nft;
    req.iptables ||= !!r.iptables;
    req.listeners ||= !!r.listeners;
    req.defaultRoute ||= !!r.defaultRoute;
    if (r.fdb) req.fdb = true;
    req.networkManager ||= !!r.networkManager;
    req.sysctls.push(...(r.sysctls ?? []));
    req.modules.push(...(r.modules ?? []));
    req.files.push(...(r.files ?? []));
    req.exists.push(...(r.exists ?? []));
    req.qmp.push(...(r.qmp ?? []));
    req.uplinks.push(...(r.uplinks ?? []));
    if (r.qdiscs) req.qdiscs = true;
    if (r.kernelFeatures)
      req.kernelFeatures = [...new Set([...(req.kernelFeatures ?? []), ...r.kernelFeatures])];
    if (r.ingressFilters) req.ingressFilters = [...(req.ingressFilters ?? []), ...r.ingressFilters];
    for (const p of r.processes ?? []) procs.set(processKey(p), p);
  }
  req.processes = [...procs.values()];
  req.sysctls = [...new Set(req.sysctls)];
  req.files = [...new Set(req.files)];
  req.uplinks = [...new Set(req.uplinks)];
  return req;
}

/** The lab against one observation: every object's verdict and the actions that repair. Pure. */
export function planLab(
  env: PlanEnv,
  obs: Observation,
  desired = desiredAll(env),
  only?: ReadonlySet<KindName>,
): LabPlan {
  const plan: LabPlan = { verdicts: [], actions: [], problems: [], notes: [] };
  for (const k of KINDS) {
    if (only && !only.has(k.name)) continue;
    const want = desired.get(k.name)!;
    const r = !env.rootless
      ? k.diff(want, obs, env)
      : runsRootless(k.name)
        ? observedRootlessPlan(k.name, k.diff(want, obs, env))
        : notRootlessPlan(k.name, want, env);
    plan.verdicts.push(...r.verdicts);
    plan.problems.push(...(r.problems ?? []));
    plan.notes.push(...(r.notes ?? []));
  }
  plan.actions = plan.verdicts.flatMap((v) => v.actions);
  return plan;
}
