// Multi-host resolution: each VM's host, each network's home, and the VXLAN span of every private network
// whose VMs (or gateway) sit on more than one host: hosts, VNI, device name and overlay MTU.
import { createHash } from "node:crypto";
import { type LabHost, type Span, VXLAN_OVERHEAD } from "../model/hosts.js";
import type { Lab, Network } from "../model/lab.js";
import type { Topology } from "../model/schema.js";
import { deriveIfname } from "./names.js";

export const DEFAULT_UNDERLAY_MTU = 1500;

/** A VNI hashed from lab and network: 24 bits, never 0, never one already taken (next attempt then). */
export function deriveVni(lab: string, network: string, taken: Set<number>): number {
  for (let attempt = 0; ; attempt++) {
    const d = createHash("sha256")
      .update(["vni", lab, network, String(attempt)].join("\0"))
      .digest();
    const vni = d.readUIntBE(0, 3);
    if (vni !== 0 && !taken.has(vni)) {
      taken.add(vni);
      return vni;
    }
  }
}

/** The hosts a network is on, before spans: its VMs' hosts, and its home when it has a gateway there. */
function hostsUsing(lab: Lab, net: Network, order: string[]): string[] {
  const set = new Set<string>();
  for (const vm of lab.vms)
    if (vm.host && vm.nics.some((n) => n.network === net.name)) set.add(vm.host);
  if (net.type !== "bridge" || net.gateway !== null) if (net.home) set.add(net.home);
  return order.filter((h) => set.has(h));
}

/**
 * Place a resolved lab on the topology's hosts (a lab without `hosts:` is returned as it is). Every
 * network gets its home (written, or the first host); a `bridge` network on two hosts or more gets a span.
 * `ifnames` holds the interface names already taken, so VXLAN device names never clash with them.
 */
export function placeOnHosts(t: Topology, lab: Lab, ifnames: Set<string>): Lab {
  if (!t.hosts || t.hosts.size === 0) return lab;
  const hosts: LabHost[] = [...t.hosts].map(([name, h]) => ({
    name,
    address: h.address,
    mtu: h.mtu ?? DEFAULT_UNDERLAY_MTU,
  }));
  const order = hosts.map((h) => h.name);
  const first = order[0]!;
  const mtuOf = new Map(hosts.map((h) => [h.name, h.mtu]));
  const vms = lab.vms.map((vm) => ({ ...vm, host: t.vms.get(vm.name)?.host ?? first }));
  const placed: Lab = { ...lab, vms, hosts };
  const taken = new Set<number>();
  for (const spec of t.networks.values())
    if (spec.type === "bridge" && spec.vni) taken.add(spec.vni);
  const networks = lab.networks.map((net): Network => {
    const spec = t.networks.get(net.name);
    const home = spec?.home ?? first;
    if (net.type !== "bridge") return { ...net, home };
    const withHome = { ...net, home };
    const on = hostsUsing(placed, withHome, order);
    if (on.length < 2) return withHome;
    const vni =
      spec?.type === "bridge" && spec.vni ? spec.vni : deriveVni(lab.name, net.name, taken);
    const span: Span = {
      hosts: on,
      vni,
      device: deriveIfname("qnvx-", ifnames, lab.name, net.name),
      mtu: Math.min(...on.map((h) => mtuOf.get(h)!)) - VXLAN_OVERHEAD,
    };
    return { ...withHome, span };
  });
  return { ...placed, networks };
}

/** The hosts a network is on: its span's, or the one host its VMs (or gateway) use, else its home. */
export function networkHosts(lab: Lab, net: Network): string[] {
  if (net.type === "bridge" && net.span) return net.span.hosts;
  const order = (lab.hosts ?? []).map((h) => h.name);
  const on = hostsUsing(lab, net, order);
  return on.length > 0 ? on : net.home ? [net.home] : [];
}
