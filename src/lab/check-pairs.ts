// `qnet check`: which connectivity pairs a running lab should pass (pure: from the lab and its live state).
import type { Forward, Lab, Network, Nic } from "../model/lab.js";
import type { LiveLab } from "./live.js";

export type PairKind = "vm-vm" | "vm-gateway" | "host-vm" | "forward" | "nat";
export type PairStatus = "pass" | "fail" | "warn" | "skip";

/** A VM NIC a pair's packets go through: the pair depends on it. */
export interface PairEnd {
  vm: string;
  network: string;
}

/** One probe: a ping (or, for forwards, a TCP connect) from `from` to `address`. */
export interface Pair {
  /** Stable, e.g. `vm0>vm1@lan`, `host>vm0@lan`, `host>fwd:tcp:8022@lan`, `vm0>nat:192.0.2.1`. */
  id: string;
  kind: PairKind;
  /** A VM name, or "host" (the lab's network namespace). */
  from: string;
  /** A VM name, "gateway", "forward", or the NAT target. */
  to: string;
  network: string | null;
  /** The address pinged or connected to ("" when there is none to try). */
  address: string;
  /** The address replies go back to (the source's address on the network), when known. */
  source: string | null;
  port: number | null;
  forward: (Forward & { networkType: "user" | "bridge"; targetVm: string | null }) | null;
  ends: PairEnd[];
  /** Set when the pair cannot be tried at all (e.g. the VM holds no address): it fails with this. */
  blocked: string | null;
}

/** The result of a pair, as `qnet check` reports it. */
export interface PairResult extends Pair {
  status: PairStatus;
  /** Round-trip time (ping) or connect time (forward) in milliseconds. */
  latencyMs: number | null;
  /** What happened, in words (the tool's own error when it failed). */
  detail: string;
  /** Failures only: the most likely cause found by status and doctor, or what was tried. */
  cause: string | null;
}

const bare = (cidr: string) => cidr.split("/")[0]!;

/** The address `nic` of `vm` answers on: the plan's, or what the agent reports on a bridged network. */
function nicAddress(
  live: LiveLab,
  vm: string,
  nic: Nic,
): { address: string; blocked: string | null } {
  if (nic.networkType !== "bridged") return { address: nic.ip ?? "", blocked: null };
  const v = live.vms.find((x) => x.name === vm);
  const n = v?.nics?.find((x) => x.nic === nic.index);
  if (n?.ipv4.length) return { address: bare(n.ipv4[0]!), blocked: null };
  const why =
    v?.state !== "running"
      ? `${vm} is not running`
      : v.nics === null
        ? `the guest agent of ${vm} did not report its addresses (${v.agentError ?? "no answer"})`
        : `${vm} holds no IPv4 address on ${nic.network}`;
  return { address: "", blocked: why };
}

function gatewayOf(net: Network): string | null {
  if (net.type === "user") return net.hostAddr;
  if (net.type === "bridge") return net.gateway;
  return null; // a bridged network's router is the LAN's, outside the lab
}

/** Can the lab's namespace reach VMs on this network directly? */
function hostReaches(net: Network): boolean {
  if (net.type === "bridge") return net.gateway !== null;
  if (net.type === "bridged") return net.mode === "bridge";
  return false; // user networking: each VM sits behind its own QEMU NAT
}

/** Where the host connects to reach a forward: a wildcard bind is reached on an address it covers. */
export function forwardConnectAddress(net: Network, f: Forward): string {
  if (f.hostAddr !== "0.0.0.0") return f.hostAddr;
  return net.type === "bridge" && net.gateway ? net.gateway : "127.0.0.1";
}

/** Every pair to probe, in a stable order: VM→VM, VM→gateway, host→VM, forwards, NAT. */
export function planPairs(lab: Lab, live: LiveLab, opts: { target?: string | null } = {}): Pair[] {
  const pairs: Pair[] = [];
  const base = { source: null, port: null, forward: null, blocked: null } as const;
  for (const net of lab.networks) {
    const members = lab.vms.flatMap((vm) =>
      vm.nics.filter((n) => n.network === net.name).map((nic) => ({ vm: vm.name, nic })),
    );
    // VMs on a user network each have their own QEMU stack: they cannot see each other.
    if (net.type !== "user") {
      for (const a of members) {
        for (const b of members) {
          if (a.vm === b.vm) continue;
          const to = nicAddress(live, b.vm, b.nic);
          const src = nicAddress(live, a.vm, a.nic);
          pairs.push({
            ...base,
            id: `${a.vm}>${b.vm}@${net.name}`,
            kind: "vm-vm",
            from: a.vm,
            to: b.vm,
            network: net.name,
            address: to.address,
            source: src.address || null,
            ends: [
              { vm: a.vm, network: net.name },
              { vm: b.vm, network: net.name },
            ],
            blocked: src.blocked ?? to.blocked,
          });
        }
      }
    }
    const gw = gatewayOf(net);
    if (gw) {
      for (const a of members) {
        const src = nicAddress(live, a.vm, a.nic);
        pairs.push({
          ...base,
          id: `${a.vm}>gateway@${net.name}`,
          kind: "vm-gateway",
          from: a.vm,
          to: "gateway",
          network: net.name,
          address: gw,
          source: src.address || null,
          ends: [{ vm: a.vm, network: net.name }],
          blocked: src.blocked,
        });
      }
    }
    if (hostReaches(net)) {
      for (const b of members) {
        const to = nicAddress(live, b.vm, b.nic);
        pairs.push({
          ...base,
          id: `host>${b.vm}@${net.name}`,
          kind: "host-vm",
          from: "host",
          to: b.vm,
          network: net.name,
          address: to.address,
          source: gw,
          ends: [{ vm: b.vm, network: net.name }],
          blocked: to.blocked,
        });
      }
    }
    if (net.type === "user" || net.type === "bridge") {
      for (const f of net.forwards) {
        const targets = f.vm ? [f.vm] : [...new Set(members.map((m) => m.vm))];
        pairs.push({
          ...base,
          id: `host>fwd:${f.proto}:${f.hostAddr}:${f.hostPort}@${net.name}`,
          kind: "forward",
          from: "host",
          to: "forward",
          network: net.name,
          address: forwardConnectAddress(net, f),
          port: f.hostPort,
          forward: { ...f, networkType: net.type, targetVm: targets[0] ?? null },
          ends: targets.map((vm) => ({ vm, network: net.name })),
        });
      }
    }
  }
  if (opts.target) {
    for (const vm of lab.vms) {
      const nat = vm.nics.find((n) =>
        lab.networks.some((x) => x.name === n.network && x.type === "bridge" && x.nat),
      );
      if (!nat) continue;
      pairs.push({
        ...base,
        id: `${vm.name}>nat:${opts.target}`,
        kind: "nat",
        from: vm.name,
        to: opts.target,
        network: nat.network,
        address: opts.target,
        ends: [{ vm: vm.name, network: nat.network }],
      });
    }
  }
  return pairs;
}

/** The round-trip time in ms from one ping's output (iputils or busybox), or null. */
export function parsePingLatency(out: string): number | null {
  const m = /time[=<]\s*([\d.]+)\s*ms/.exec(out);
  return m ? Number(m[1]) : null;
}

/** A one-line reason from a failed ping's output (its own error, or "no reply"). */
export function pingFailure(stdout: string, stderr: string, waitS: number): string {
  const err = stderr
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l !== "");
  if (err) return err;
  return /\b0 (packets )?received/.test(stdout) || stdout.trim() === ""
    ? `no reply within ${waitS} s`
    : `no reply within ${waitS} s (${stdout.trim().split("\n").pop()})`;
}

/** Is something listening on TCP `port` according to /proc/net/tcp{,6} text? */
export function listensOn(procNetTcp: string, port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  return procNetTcp.split("\n").some((line) => {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st ...; state 0A is LISTEN.
    return f.length > 3 && f[1]?.endsWith(`:${hex}`) === true && f[3] === "0A";
  });
}
