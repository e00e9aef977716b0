// Shared fixtures of the host engine's unit tests: example labs and snapshots of a host where they are up.
import { readFileSync } from "node:fs";
import type { HostLink, HostSnapshot } from "../../src/host/iproute2.js";
import { compileTopology } from "../../src/load/compile.js";
import type { Lab } from "../../src/model/lab.js";
import { desiredHost } from "../../src/plan/host-plan.js";

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
  bridge: null,
  tap: null,
  addrs: [{ family: "inet", local: "127.0.0.1", prefixlen: 8 }],
};

/** The snapshot of a host where the lab is fully up. */
export function upSnapshot(lab: Lab): HostSnapshot {
  const want = desiredHost(lab);
  const links: HostLink[] = [lo];
  for (const b of want.bridges) {
    const [local, p] = (b.address ?? "/").split("/");
    links.push({
      name: b.name,
      index: links.length + 1,
      kind: "bridge",
      alias: want.mark,
      master: null,
      up: true,
      bridge: {
        stpState: 0,
        forwardDelay: 0,
        nfCallIptables: 0,
        nfCallIp6tables: 0,
        nfCallArptables: 0,
      },
      tap: null,
      addrs: b.address ? [{ family: "inet", local: local!, prefixlen: Number(p) }] : [],
    });
  }
  for (const t of want.taps) {
    links.push({
      name: t.name,
      index: links.length + 1,
      kind: "tun",
      alias: want.mark,
      master: t.bridge,
      up: true,
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
    flags: l.up ? ["BROADCAST", "UP"] : ["BROADCAST"],
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
