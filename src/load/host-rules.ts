// Rules of multi-host labs (`hosts:`), every finding located: known hosts, a host for every VM, `user`
// and `bridged` networks used only on their own host, distinct underlay addresses and VNIs; and, for every
// lab, the kernel's limit of ports on one bridge.

import { BRIDGE_MAX_PORTS } from "../model/hosts.js";
import { parseIpv4 } from "../model/ipv4.js";
import type { Topology } from "../model/schema.js";
import type { PathSegment } from "./parse.js";
import { didYouMean, type Emit, show } from "./schema-issues.js";

const isUsableUnicast = (ip: number) => {
  const first = ip >>> 24;
  return ip !== 0 && first !== 0 && first < 224 && first !== 127;
};

export function hostRules(t: Topology, emit: Emit): void {
  const hosts = t.hosts && t.hosts.size > 0 ? t.hosts : null;
  const names = hosts ? [...hosts.keys()] : [];
  const first = names[0];

  if (!hosts) {
    // Without hosts, the multi-host fields have nothing to refer to.
    for (const [vm, spec] of t.vms)
      if (spec.host !== undefined)
        emit(["vms", vm, "host"], "`host` needs a `hosts:` section that names the lab's hosts");
    for (const [net, spec] of t.networks) {
      if (spec.home !== undefined)
        emit(
          ["networks", net, "home"],
          "`home` needs a `hosts:` section that names the lab's hosts",
        );
      if (spec.type === "bridge" && spec.vni !== undefined)
        emit(
          ["networks", net, "vni"],
          "`vni` applies to a network that spans hosts: it needs a `hosts:` section",
        );
    }
  } else {
    const addresses = new Map<number, string>();
    for (const [name, h] of hosts) {
      if (h.address === "") continue; // failed the schema: reported there
      const ip = parseIpv4(h.address);
      if (ip === null) {
        emit(["hosts", name, "address"], `found ${show(h.address)}; expected an IPv4 address`);
        continue;
      }
      if (!isUsableUnicast(ip)) {
        emit(
          ["hosts", name, "address"],
          `${h.address} is not a unicast address another host can reach (loopback, multicast, 0.0.0.0 and the like are refused)`,
        );
        continue;
      }
      const prev = addresses.get(ip);
      if (prev)
        emit(
          ["hosts", name, "address"],
          `address ${h.address} is already the address of host ${prev}`,
        );
      else addresses.set(ip, name);
    }
  }

  const unknownHost = (path: PathSegment[], value: string) => {
    const guess = didYouMean(value, names);
    emit(
      path,
      `unknown host ${show(value)}${guess ? ` (did you mean "${guess}"?)` : ""}; hosts: ${names.join(", ")}`,
    );
  };
  const homeOf = new Map<string, string | undefined>();
  for (const [net, spec] of t.networks) {
    if (hosts && spec.home !== undefined && !hosts.has(spec.home)) {
      unknownHost(["networks", net, "home"], spec.home);
      homeOf.set(net, undefined);
    } else homeOf.set(net, spec.home ?? first);
  }

  const vmHost = new Map<string, string | undefined>();
  for (const [vm, spec] of t.vms) {
    if (!hosts) continue;
    if (spec.host === undefined) {
      emit(
        ["vms", vm],
        `VM ${vm} names no host: with \`hosts:\` every VM needs \`host:\`, one of ${names.join(", ")}`,
        "error",
        "key",
      );
      continue;
    }
    if (!hosts.has(spec.host)) {
      unknownHost(["vms", vm, "host"], spec.host);
      continue;
    }
    vmHost.set(vm, spec.host);
    spec.nics.forEach((nic, i) => {
      const net = t.networks.get(nic.network);
      const home = homeOf.get(nic.network);
      if (!net || net.type === "bridge" || home === undefined || home === spec.host) return;
      const why =
        net.type === "user"
          ? "QEMU's user networking lives inside each VM's QEMU, and its forwards bind that host's ports"
          : "its uplink is a NIC of that host";
      emit(
        ["vms", vm, "nics", i, "network"],
        `network ${nic.network} (type ${net.type}) belongs to host ${home}${net.home ? "" : " (the first host, its default `home`)"}, but VM ${vm} runs on ${spec.host}: ${why}; only \`bridge\` networks span hosts. Set \`home: ${spec.host}\` on the network or move the VM`,
      );
    });
  }

  // VNIs written in the file must be distinct: two networks with one VNI would be one segment.
  const vnis = new Map<number, string>();
  for (const [net, spec] of t.networks) {
    if (spec.type !== "bridge" || spec.vni === undefined) continue;
    const prev = vnis.get(spec.vni);
    if (prev) emit(["networks", net, "vni"], `VNI ${spec.vni} is already network ${prev}'s`);
    else vnis.set(spec.vni, net);
  }

  // Ports of one bridge on one host: the VMs' taps there, plus the VXLAN device of a spanned network
  // (peers cost no port: head-end replication sends to them from that one device).
  const ports = new Map<string, number>();
  const hostsOfNet = new Map<string, Set<string>>();
  for (const [vm, spec] of t.vms) {
    const host = vmHost.get(vm) ?? "";
    for (const nic of spec.nics) {
      const net = t.networks.get(nic.network);
      if (!net || net.type === "user" || (net.type === "bridged" && net.mode === "macvtap"))
        continue;
      const key = `${nic.network}\0${host}`;
      ports.set(key, (ports.get(key) ?? 0) + 1);
      hostsOfNet.set(nic.network, (hostsOfNet.get(nic.network) ?? new Set()).add(host));
    }
  }
  for (const [key, n] of ports) {
    const [net, host] = key.split("\0") as [string, string];
    const spec = t.networks.get(net)!;
    const on = hostsOfNet.get(net)!;
    const home = homeOf.get(net);
    const gwHome = spec.type === "bridge" && spec.gateway !== "none" && home ? 1 : 0;
    const spanned = hosts && on.size + (gwHome && home && !on.has(home) ? 1 : 0) > 1 ? 1 : 0;
    const uplink = spec.type === "bridged" ? 1 : 0;
    const total = n + spanned + uplink;
    if (total > BRIDGE_MAX_PORTS) {
      const extra = [spanned ? "its VXLAN device" : "", uplink ? "the uplink" : ""].filter(Boolean);
      emit(
        ["networks", net],
        `network ${net} needs ${total} ports on one bridge${host ? ` on host ${host}` : ""} (${n} VM NICs${extra.length ? ` + ${extra.join(" + ")}` : ""}); the kernel allows ${BRIDGE_MAX_PORTS} per bridge (BR_MAX_PORTS 1024, port 0 unused)${hosts ? ": spread its VMs over more hosts (peers cost no port) or split the network" : ": split the network, or spread it over hosts with `hosts:`"}`,
        "error",
        "key",
      );
    }
  }
}
