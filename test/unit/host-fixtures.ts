// Shared fixtures of the host engine's unit tests: example labs and snapshots of a host where they are up.
import { readFileSync } from "node:fs";
import { emptyObservation, type HostLink, type Observation } from "../../src/facts/types.js";
import { type LabPlan, planLab } from "../../src/kinds/index.js";
import { tapsOf } from "../../src/kinds/tap.js";
import type { KindName, PlanEnv } from "../../src/kinds/types.js";
import { compileTopology } from "../../src/load/compile.js";
import type { Lab } from "../../src/model/lab.js";
import { ownerMark } from "../../src/model/names.js";

/** The snapshot shape of these tests: a namespace and its links. */
export interface HostSnapshot {
  netns: string | null;
  links: HostLink[];
}

export const LINK_KINDS: KindName[] = ["bridge", "address", "tap", "macvtap"];

export function env(lab: Lab, netns: string | null = null): PlanEnv {
  return {
    lab,
    stateDir: "/run/qnet/test",
    dataDir: "/var/lib/qnet-test",
    netns,
    vms: false,
    cold: false,
    machine: { kvm: false, vhost: false },
    bridgeNfPerNetns: true,
    rootless: null,
  };
}

/** The plan of the link kinds against a snapshot (pure). */
export function planLinks(lab: Lab, snap: HostSnapshot): LabPlan {
  const obs: Observation = { ...emptyObservation(snap.netns, true), links: snap.links };
  return planLab(env(lab, snap.netns), obs, undefined, new Set(LINK_KINDS));
}

const root = new URL("../../../", import.meta.url);
export function exampleLab(name: string): Lab {
  const file = new URL(`examples/${name}`, root);
  return compileTopology(readFileSync(file, "utf8"), name).lab;
}

export const lo: HostLink = {
  name: "lo",
  index: 1,
  kind: null,
  alias: null,
  master: null,
  up: true,
  noCarrier: false,
  mac: "00:00:00:00:00:00",
  mtu: 65536,
  bridge: null,
  tap: null,
  addrs: [{ family: "inet", local: "127.0.0.1", prefixlen: 8 }],
};

/** The snapshot of a host where the lab is fully up. */
export function upSnapshot(lab: Lab): HostSnapshot {
  const mark = ownerMark(lab.name);
  const links: HostLink[] = [lo];
  for (const n of lab.networks) {
    if (n.type !== "bridge") continue;
    links.push({
      name: n.bridge,
      index: links.length + 1,
      kind: "bridge",
      alias: mark,
      master: null,
      up: true,
      noCarrier: false,
      mac: null,
      mtu: 1500,
      bridge: {
        stpState: 0,
        forwardDelay: 0,
        nfCallIptables: 0,
        nfCallIp6tables: 0,
        nfCallArptables: 0,
      },
      tap: null,
      addrs: n.gateway ? [{ family: "inet", local: n.gateway, prefixlen: n.prefix }] : [],
    });
  }
  for (const t of tapsOf(lab)) {
    links.push({
      name: t.name,
      index: links.length + 1,
      kind: "tun",
      alias: mark,
      master: t.bridge,
      up: true,
      noCarrier: false,
      mac: null,
      mtu: 1500,
      bridge: null,
      tap: { type: "tap", user: t.user, multiQueue: t.multiQueue },
      addrs: [],
    });
  }
  return { netns: null, links };
}

/** A snapshot as `ip -json -details link show` and `ip -json addr show` would print it. */
export function snapshotJson(snap: HostSnapshot): { links: string; addrs: string } {
  const links = snap.links.map((l) => ({
    ifindex: l.index,
    ifname: l.name,
    flags: [...(l.noCarrier ? ["NO-CARRIER"] : []), "BROADCAST", ...(l.up ? ["UP"] : [])],
    ...(l.master ? { master: l.master } : {}),
    ...(l.alias ? { ifalias: l.alias } : {}),
    ...(l.kind
      ? {
          linkinfo: {
            info_kind: l.kind,
            info_data: l.bridge
              ? {
                  stp_state: l.bridge.stpState,
                  forward_delay: l.bridge.forwardDelay,
                  nf_call_iptables: l.bridge.nfCallIptables,
                  nf_call_ip6tables: l.bridge.nfCallIp6tables,
                  nf_call_arptables: l.bridge.nfCallArptables,
                }
              : l.tap
                ? {
                    type: l.tap.type,
                    multi_queue: l.tap.multiQueue,
                    ...(l.tap.user ? { user: l.tap.user } : {}),
                  }
                : {},
          },
        }
      : {}),
  }));
  const addrs = snap.links.map((l) => ({ ifname: l.name, addr_info: l.addrs }));
  return { links: JSON.stringify(links), addrs: JSON.stringify(addrs) };
}
