// The shape every resource kind shares: what the lab wants (desired), what to observe, and the pure diff
// of the two into verdicts (one per object: present, missing or drifted) carrying the actions that repair.
import type { Observation, ObserveRequest } from "../facts/types.js";
import type { HostFacts, Lab } from "../model/lab.js";
import type { Undo } from "../model/undo.js";
import type { RootlessPlace } from "./rootless.js";

export type KindName =
  | "netns"
  | "module"
  | "nm-unmanaged"
  | "uplink"
  | "bridge"
  | "address"
  | "tap"
  | "macvtap"
  | "vxlan"
  | "fdb"
  | "ifb"
  | "impair"
  | "sysctl"
  | "nft-table"
  | "firewall"
  | "dnsmasq"
  | "hosts"
  | "overlay"
  | "seed"
  | "vm";

export type ObjectState = "present" | "missing" | "drifted";

/** Everything a plan depends on besides the observation: the lab and where and how it runs. */
export interface PlanEnv {
  lab: Lab;
  /** The lab's state directory (paths of its files; nothing is read from it here). */
  stateDir: string;
  /** Where what outlives the lab is kept (`persist: true` overlays): ~/.local/share/qnet. */
  dataDir: string;
  /** The namespace the lab runs in (null: the one qnet runs in). */
  netns: string | null;
  /** Start and watch the VMs (false: `up --no-vms`). */
  vms: boolean;
  /** Boot every VM cold, never from a template (`up --cold`). */
  cold: boolean;
  /** KVM and vhost-net, for the VMs' command lines. */
  machine: HostFacts;
  /** br_netfilter's bridge-nf-call-* sysctls belong to each namespace (Linux 5.3 and later). */
  bridgeNfPerNetns: boolean;
  /** Inside a rootless lab's own namespaces (src/kinds/rootless.ts decides what runs there), else null. */
  rootless: RootlessPlace | null;
}

/** One change that takes an object towards what the lab wants. */
export interface Action<P = unknown> {
  kind: KindName;
  /** For people: "create bridge qnbr-1234 with 10.0.2.1/24". */
  what: string;
  /** Why: "it does not exist yet", "detached from qnbr-1234", ... */
  reason: string;
  /** How to take it back, journaled before the change; null when it only repairs an object qnet owns. */
  undo: Undo | null;
  /** `ip -batch` lines, for the kinds whose changes all go in one batch (links). */
  batch?: string[];
  /** What the kind's executor needs to make the change. */
  payload: P;
}

/** One object a lab wants, as observed: its state, and the actions (empty when present). */
export interface Verdict {
  kind: KindName;
  name: string;
  state: ObjectState;
  /** What it is (present), or what differs (missing, drifted). */
  detail: string;
  actions: Action[];
}

export interface Kind<W> {
  readonly name: KindName;
  /** The objects of this kind the lab wants. Pure. */
  desired(env: PlanEnv): W[];
  /** What of the host these objects depend on; the engine reads it all in one observation. */
  observe(want: W[], env: PlanEnv): Partial<ObserveRequest>;
  /** Each wanted object against the observation (and stale ones qnet made): pure. */
  diff(want: W[], obs: Observation, env: PlanEnv): KindPlan;
}

export interface KindPlan {
  verdicts: Verdict[];
  /** Reasons nothing may be changed (a name held by an interface qnet did not make, ...). */
  problems?: string[];
  /** Things people should know (macvtap's limitation, a DHCP client on an uplink, ...). */
  notes?: string[];
}

/** A verdict from a list of actions: present when there are none, else `state` with their reasons. */
export function verdict(
  kind: KindName,
  name: string,
  ok: string,
  actions: Action[],
  state: ObjectState = "drifted",
): Verdict {
  return actions.length === 0
    ? { kind, name, state: "present", detail: ok, actions }
    : { kind, name, state, detail: [...new Set(actions.map((a) => a.reason))].join("; "), actions };
}

/** The reason qnet gives for making an object that is not there. */
export const ABSENT = "absent";
