// Pure host planning: the links a lab wants versus an observed snapshot, as ordered `ip -batch` actions.
import { UserError } from "../errors.js";
import type { HostLink, HostSnapshot } from "../host/iproute2.js";
import type { Undo } from "../host/journal.js";
import { type Lab, ownerMark } from "../model/lab.js";

/** qnet's ownership mark on the links it creates (ifalias). */
export const linkMark = ownerMark;

export interface DesiredBridge {
  name: string;
  network: string;
  /** "10.0.2.1/24", or null for a pure L2 network. */
  address: string | null;
}

export interface DesiredTap {
  name: string;
  bridge: string;
  vm: string;
  nic: number;
  user: string | null;
  multiQueue: boolean;
}

export interface DesiredHost {
  mark: string;
  bridges: DesiredBridge[];
  taps: DesiredTap[];
  /** Names qnet must never delete as stale (bridges and uplinks of `bridged` networks). */
  reserved: string[];
}

export interface HostAction {
  /** What is done, for people ("create bridge br0"). */
  what: string;
  /** Why ("absent", "detached from br0", ...). */
  reason: string;
  /** How to take the change back; null when the action only adjusts or removes an object qnet already owns. */
  undo: Undo | null;
  /** Lines for `ip -batch` (each one `ip` command without the leading `ip`). */
  batch: string[];
}

const VIRTIO = /^virtio-net/;

/** The host links a lab wants. `bridged` networks are not built here (their helper moves the uplink). */
export function desiredHost(lab: Lab): DesiredHost {
  const bridges: DesiredBridge[] = [];
  const reserved: string[] = [];
  const bridgeOf = new Map<string, string>();
  for (const n of lab.networks) {
    if (n.type === "bridge") {
      bridges.push({
        name: n.bridge,
        network: n.name,
        address: n.gateway ? `${n.gateway}/${n.prefix}` : null,
      });
      bridgeOf.set(n.name, n.bridge);
    } else if (n.type === "bridged") {
      reserved.push(n.bridge, n.uplink);
    }
  }
  const taps: DesiredTap[] = [];
  for (const vm of lab.vms) {
    for (const nic of vm.nics) {
      const bridge = bridgeOf.get(nic.network);
      if (nic.networkType !== "bridge" || !nic.tap || !bridge) continue;
      taps.push({
        name: nic.tap,
        bridge,
        vm: vm.name,
        nic: nic.index,
        user: vm.user,
        multiQueue: vm.cpus > 1 && VIRTIO.test(nic.model),
      });
    }
  }
  return { mark: linkMark(lab.name), bridges, taps, reserved };
}

/** Every token that reaches an `ip -batch` line; the batch tokenizer must see it as one plain word. */
const SAFE_TOKEN = /^[A-Za-z0-9_.:/@-]+$/;

/** One `ip -batch` line from tokens; refuses anything that could split or comment a line. */
export function batchLine(...tokens: string[]): string {
  for (const t of tokens) {
    if (!SAFE_TOKEN.test(t)) throw new Error(`unsafe token for ip -batch: ${JSON.stringify(t)}`);
  }
  return tokens.join(" ");
}

const BRIDGE_OPTS = [
  "stp_state",
  "0",
  "forward_delay",
  "0",
  "nf_call_iptables",
  "0",
  "nf_call_ip6tables",
  "0",
  "nf_call_arptables",
  "0",
];

function createBridge(b: DesiredBridge, mark: string): string[] {
  const lines = [
    batchLine("link", "add", "name", b.name, "type", "bridge", ...BRIDGE_OPTS),
    batchLine("link", "set", "dev", b.name, "alias", mark),
  ];
  if (b.address) lines.push(batchLine("addr", "add", b.address, "dev", b.name));
  lines.push(batchLine("link", "set", "dev", b.name, "up"));
  return lines;
}

function createTap(t: DesiredTap, mark: string): string[] {
  const add = ["tuntap", "add", "dev", t.name, "mode", "tap"];
  if (t.user) add.push("user", t.user);
  if (t.multiQueue) add.push("multi_queue");
  return [
    batchLine(...add),
    // The mark goes on in the very next line: ip runs the whole batch even if qnet is killed.
    batchLine("link", "set", "dev", t.name, "alias", mark),
    batchLine("link", "set", "dev", t.name, "master", t.bridge, "up"),
  ];
}

function bridgeDrift(l: HostLink): string[] {
  const b = l.bridge;
  if (!b) return ["not a bridge"];
  const d: string[] = [];
  if (b.stpState !== 0) d.push(`stp_state ${b.stpState}`);
  if (b.forwardDelay !== 0) d.push(`forward_delay ${b.forwardDelay}`);
  for (const [k, v] of [
    ["nf_call_iptables", b.nfCallIptables],
    ["nf_call_ip6tables", b.nfCallIp6tables],
    ["nf_call_arptables", b.nfCallArptables],
  ] as const) {
    // null: the kernel has no bridge netfilter, so nothing to turn off.
    if (v !== null && v !== 0) d.push(`${k} ${v}`);
  }
  return d;
}

function hasAddr(l: HostLink, cidr: string): boolean {
  const [ip, p] = cidr.split("/");
  return l.addrs.some((a) => a.family === "inet" && a.local === ip && String(a.prefixlen) === p);
}

/** Why a tap must be deleted and made again (its flags cannot change in place), or null. */
function tapRecreateReason(l: HostLink, t: DesiredTap): string | null {
  if (l.kind !== "tun" || !l.tap || l.tap.type !== "tap")
    return `is a ${l.kind ?? "plain"} link, not a tap`;
  if ((l.tap.user ?? null) !== t.user)
    return `owner ${l.tap.user ?? "none"}, wanted ${t.user ?? "none"}`;
  if (l.tap.multiQueue !== t.multiQueue) return `multi_queue ${l.tap.multiQueue ? "on" : "off"}`;
  return null;
}

/** Names wanted by the lab that a link without the lab's mark holds: qnet must not touch those. */
export function foreignConflicts(want: DesiredHost, snap: HostSnapshot): HostLink[] {
  const byName = new Map(snap.links.map((l) => [l.name, l]));
  const out: HostLink[] = [];
  for (const name of [...want.bridges.map((b) => b.name), ...want.taps.map((t) => t.name)]) {
    const l = byName.get(name);
    if (l && l.alias !== want.mark) out.push(l);
  }
  return out;
}

/**
 * The ordered actions that take the observed host to the lab's links: stale links first, then each
 * bridge before its taps. Empty when nothing differs. Throws a UserError, before any change, when a
 * needed name is held by an interface qnet did not make for this lab.
 */
export function planHostNetwork(lab: Lab, snap: HostSnapshot): HostAction[] {
  const want = desiredHost(lab);
  const conflicts = foreignConflicts(want, snap);
  if (conflicts.length > 0) {
    const list = conflicts
      .map((l) => `${l.name} (${l.alias ? `marked "${l.alias}"` : "no qnet mark"})`)
      .join(", ");
    throw new UserError(
      `interface name${conflicts.length > 1 ? "s" : ""} needed by lab "${lab.name}" already taken by an interface qnet did not create for it: ${list}${snap.netns ? ` in network namespace ${snap.netns}` : ""}; nothing was changed`,
      "rename or remove that interface, or give the network another `bridge:` name",
    );
  }
  const mark = want.mark;
  const byName = new Map(snap.links.map((l) => [l.name, l]));
  const wanted = new Set([...want.bridges.map((b) => b.name), ...want.taps.map((t) => t.name)]);
  const reserved = new Set(want.reserved);
  const linkUndo = (name: string): Undo => ({ kind: "link", name, alias: mark });
  const actions: HostAction[] = [];

  // Stale: links marked for this lab that it no longer wants (a VM or network removed). Taps first.
  const stale = snap.links.filter(
    (l) => l.alias === mark && !wanted.has(l.name) && !reserved.has(l.name),
  );
  for (const l of [
    ...stale.filter((s) => s.kind !== "bridge"),
    ...stale.filter((s) => s.kind === "bridge"),
  ]) {
    if (l.kind !== "tun" && l.kind !== "bridge") continue; // only what this engine makes
    const foreignPort = snap.links.find((p) => p.master === l.name && p.alias !== mark);
    if (foreignPort) continue; // a port qnet did not make hangs on it: leave it alone
    actions.push({
      what: `delete ${l.kind === "bridge" ? "bridge" : "tap"} ${l.name}`,
      reason: "marked for this lab but no longer in the topology",
      undo: null,
      batch: [batchLine("link", "del", "dev", l.name)],
    });
  }

  for (const b of want.bridges) {
    const l = byName.get(b.name);
    if (!l) {
      actions.push({
        what: `create bridge ${b.name}${b.address ? ` with ${b.address}` : ""} (STP off, forward delay 0, nf_call_iptables/ip6tables/arptables 0)`,
        reason: "absent",
        undo: linkUndo(b.name),
        batch: createBridge(b, mark),
      });
    } else if (l.kind !== "bridge") {
      actions.push({
        what: `replace ${b.name} by a bridge`,
        reason: `is a ${l.kind ?? "plain"} link`,
        undo: linkUndo(b.name),
        batch: [batchLine("link", "del", "dev", b.name), ...createBridge(b, mark)],
      });
    } else {
      const drift = bridgeDrift(l);
      if (drift.length > 0) {
        actions.push({
          what: `set bridge ${b.name} STP off, forward delay 0, nf_call_* 0`,
          reason: drift.join(", "),
          undo: null,
          batch: [batchLine("link", "set", "dev", b.name, "type", "bridge", ...BRIDGE_OPTS)],
        });
      }
      if (b.address && !hasAddr(l, b.address)) {
        actions.push({
          what: `add address ${b.address} to bridge ${b.name}`,
          reason: "address missing",
          undo: null,
          batch: [batchLine("addr", "add", b.address, "dev", b.name)],
        });
      }
      if (!l.up) {
        actions.push({
          what: `set bridge ${b.name} up`,
          reason: "down",
          undo: null,
          batch: [batchLine("link", "set", "dev", b.name, "up")],
        });
      }
    }
  }

  for (const t of want.taps) {
    const l = byName.get(t.name);
    const desc = `tap ${t.name} for ${t.vm} nic ${t.nic} on ${t.bridge}${t.user ? `, owner ${t.user}` : ""}${t.multiQueue ? ", multi-queue" : ""}`;
    if (!l) {
      actions.push({
        what: `create ${desc}`,
        reason: "absent",
        undo: linkUndo(t.name),
        batch: createTap(t, mark),
      });
      continue;
    }
    const recreate = tapRecreateReason(l, t);
    if (recreate) {
      actions.push({
        what: `recreate ${desc}`,
        reason: recreate,
        undo: linkUndo(t.name),
        batch: [batchLine("link", "del", "dev", t.name), ...createTap(t, mark)],
      });
    } else if (l.master !== t.bridge || !l.up) {
      actions.push({
        what: `attach ${t.name} to ${t.bridge} and set it up`,
        reason: [l.master !== t.bridge ? `master ${l.master ?? "none"}` : "", l.up ? "" : "down"]
          .filter(Boolean)
          .join(", "),
        undo: null,
        batch: [batchLine("link", "set", "dev", t.name, "master", t.bridge, "up")],
      });
    }
  }
  return actions;
}
