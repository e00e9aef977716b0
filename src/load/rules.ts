// The rules the schema cannot express: addresses inside their subnet, no duplicates, references that
// resolve, host ports with one owner; every finding located.
import { parseForward } from "../model/forward.js";
import {
  broadcast,
  formatIpv4,
  inSubnet,
  overlaps,
  parseCidr,
  parseIpv4,
  type Subnet,
} from "../model/ipv4.js";
import { MAC_RE } from "../model/names.js";
import type { Topology } from "../model/schema.js";
import { hostRules } from "./host-rules.js";
import { imageRules } from "./image-rules.js";
import { impairRules } from "./impair-rules.js";
import type { PathSegment } from "./parse.js";
import { didYouMean, type Emit, show } from "./schema-issues.js";

/** Limits that keep a hostile file from costing more than a moment. */
export const LIMITS = { vms: 10_000, networks: 1_000, nicsPerVm: 28, hosts: 1_000 } as const;

const isMulticastMac = (mac: string) => (Number.parseInt(mac.slice(0, 2), 16) & 1) === 1;

/**
 * Rules the schema cannot express. `known` holds every name in the file when only a partial topology is
 * checked: a reference to a network or VM that exists but failed the schema is not reported again.
 */
export function semanticRules(
  t: Topology,
  emit: Emit,
  known: { networks: Set<string>; vms: Set<string> } | null,
): void {
  const subnets = new Map<string, Subnet>();
  const gateways = new Map<string, number | null>();
  const ifnames = new Map<string, string>();
  const claimIfname = (name: string, path: PathSegment[], what: string) => {
    const prev = ifnames.get(name);
    if (prev) emit(path, `interface name "${name}" is already used by ${prev}`);
    else ifnames.set(name, what);
  };

  for (const [net, spec] of t.networks) {
    const base: PathSegment[] = ["networks", net];
    if (spec.type === "bridged") {
      claimIfname(spec.uplink, [...base, "uplink"], `the uplink of network ${net}`);
      if (spec.bridge)
        claimIfname(spec.bridge, [...base, "bridge"], `the bridge of network ${net}`);
      if (spec.probe !== undefined && parseIpv4(spec.probe) === null) {
        emit([...base, "probe"], `found ${show(spec.probe)}; expected an IPv4 address`);
      }
      continue;
    }
    const cidr = parseCidr(spec.type === "user" ? (spec.subnet ?? "10.0.2.0/24") : spec.subnet);
    if (!cidr.ok) {
      emit([...base, "subnet"], `found ${show(spec.subnet)}: ${cidr.reason}`);
      continue;
    }
    const subnet = cidr.subnet;
    const inner = (field: "gateway" | "dns" | "dhcpStart", value: string | undefined) => {
      if (value === undefined) return;
      if (field === "gateway" && value === "none") return;
      const ip = parseIpv4(value);
      if (ip === null) emit([...base, field], `found ${show(value)}; expected an IPv4 address`);
      else if (!inSubnet(ip, subnet) || ip === subnet.base || ip === broadcast(subnet)) {
        emit([...base, field], `${value} is not a host address of ${spec.subnet ?? "10.0.2.0/24"}`);
      }
    };
    if (spec.type === "user") {
      inner("dns", spec.dns);
      inner("dhcpStart", spec.dhcpStart);
      spec.forwards?.forEach((f, i) => {
        const r = parseForward(f, false);
        if (!r.ok) emit([...base, "forwards", i], `found ${show(f)}: ${r.reason}`);
      });
    } else {
      inner("gateway", spec.gateway);
      subnets.set(net, subnet);
      gateways.set(
        net,
        spec.gateway === "none" ? null : spec.gateway ? parseIpv4(spec.gateway) : subnet.base + 1,
      );
      if (spec.bridge)
        claimIfname(spec.bridge, [...base, "bridge"], `the bridge of network ${net}`);
      // Without a gateway DHCP is off unless asked for; asked for, it has no host address to serve from.
      if (spec.gateway === "none" && spec.dhcp === true) {
        emit(
          [...base, "dhcp"],
          "DHCP needs the host on the network: set a gateway, or drop `dhcp: true` (the VMs then get static addresses)",
        );
      }
      if (spec.gateway === "none" && spec.nat) {
        emit([...base, "nat"], "NAT needs the host on the network as gateway: set a gateway");
      }
    }
  }

  // Overlapping subnets between bridge networks would make the host's routes ambiguous.
  const bridgeNets = [...subnets.entries()];
  for (let i = 0; i < bridgeNets.length; i++) {
    for (let j = i + 1; j < bridgeNets.length; j++) {
      const [a, sa] = bridgeNets[i]!;
      const [b, sb] = bridgeNets[j]!;
      if (overlaps(sa, sb)) {
        emit(
          ["networks", b, "subnet"],
          `subnet overlaps network ${a}'s (${formatIpv4(sa.base)}/${sa.prefix})`,
        );
      }
    }
  }

  const ips = new Map<string, string>();
  const macs = new Map<string, string>();
  const used = new Map<string, number>(); // per network: addresses taken by fixed IPs
  const needs = new Map<string, number>(); // per network: NICs needing an allocated address
  const vmNets = new Map<string, Set<string>>();
  for (const [vm, spec] of t.vms) {
    const base: PathSegment[] = ["vms", vm];
    const boots = (["kernel", "disk", "image"] as const).filter((k) => spec[k] !== undefined);
    if (boots.length > 1)
      emit(
        [...base, boots[1]!],
        `give one of \`kernel\`, \`disk\` or \`image\`, not ${boots.map((b) => `\`${b}\``).join(" and ")}`,
      );
    if (!spec.kernel && (spec.initrd || spec.append !== undefined)) {
      emit([...base, spec.initrd ? "initrd" : "append"], "`initrd` and `append` need `kernel`");
    }
    imageRules(spec, base, emit);
    if (spec.nics.length === 0) {
      emit([...base, "nics"], "the VM has no NIC: it will not be on any network", "warning");
    }
    if (spec.nics.length > LIMITS.nicsPerVm) {
      emit(
        [...base, "nics"],
        `${spec.nics.length} NICs; at most ${LIMITS.nicsPerVm} fit on the PCI bus`,
      );
    }
    const nets = new Set<string>();
    vmNets.set(vm, nets);
    spec.nics.forEach((nic, i) => {
      const p: PathSegment[] = [...base, "nics", i];
      const net = t.networks.get(nic.network);
      if (!net) {
        if (known?.networks.has(nic.network)) return;
        const defined = known ? [...known.networks] : [...t.networks.keys()];
        const guess = didYouMean(nic.network, defined);
        emit(
          [...p, "network"],
          `unknown network ${show(nic.network)}${guess ? ` (did you mean "${guess}"?)` : ""}; defined: ${defined.join(", ") || "none"}`,
        );
        return;
      }
      nets.add(nic.network);
      if (nic.mac !== undefined) {
        if (!MAC_RE.test(nic.mac)) {
          emit(
            [...p, "mac"],
            `found ${show(nic.mac)}; expected a MAC address such as 52:54:00:12:34:56`,
          );
        } else if (isMulticastMac(nic.mac)) {
          emit(
            [...p, "mac"],
            `${nic.mac} is a multicast address (lowest bit of the first byte set); a NIC needs a unicast MAC`,
          );
        } else if (/^(00:){5}00$/.test(nic.mac)) {
          emit([...p, "mac"], "00:00:00:00:00:00 is not a usable MAC");
        } else {
          const key = nic.mac.toLowerCase();
          const prev = macs.get(key);
          if (prev) emit([...p, "mac"], `MAC ${nic.mac} is already used by ${prev}`);
          else macs.set(key, `${vm} NIC ${i}`);
        }
      }
      if (nic.ip !== undefined) {
        if (net.type !== "bridge") {
          emit(
            [...p, "ip"],
            `a fixed address applies to bridge networks only; network ${nic.network} is of type ${net.type}`,
          );
          return;
        }
        const ip = parseIpv4(nic.ip);
        const subnet = subnets.get(nic.network);
        if (ip === null) {
          emit([...p, "ip"], `found ${show(nic.ip)}; expected an IPv4 address`);
          return;
        }
        if (!subnet) return;
        if (!inSubnet(ip, subnet)) {
          emit([...p, "ip"], `${nic.ip} is outside network ${nic.network}'s subnet ${net.subnet}`);
        } else if (ip === subnet.base) {
          emit([...p, "ip"], `${nic.ip} is the network address of ${net.subnet}`);
        } else if (ip === broadcast(subnet)) {
          emit([...p, "ip"], `${nic.ip} is the broadcast address of ${net.subnet}`);
        } else if (ip === gateways.get(nic.network)) {
          emit(
            [...p, "ip"],
            `${nic.ip} is the gateway (the host's address) of network ${nic.network}`,
          );
        } else {
          const prev = ips.get(nic.ip);
          if (prev) emit([...p, "ip"], `address ${nic.ip} is already used by ${prev}`);
          else {
            ips.set(nic.ip, `${vm} NIC ${i}`);
            used.set(nic.network, (used.get(nic.network) ?? 0) + 1);
          }
        }
      } else if (net.type === "bridge") {
        needs.set(nic.network, (needs.get(nic.network) ?? 0) + 1);
      }
    });
  }

  for (const [net, n] of needs) {
    const subnet = subnets.get(net);
    if (!subnet) continue;
    const free = subnet.size - 2 - (gateways.get(net) === null ? 0 : 1) - (used.get(net) ?? 0);
    if (n > free) {
      emit(
        ["networks", net, "subnet"],
        `${n} NICs need an address but only ${Math.max(free, 0)} are free in ${formatIpv4(subnet.base)}/${subnet.prefix}`,
      );
    }
  }

  // Host ports: one owner per (proto, port) on overlapping addresses.
  const ports = new Map<string, { addr: string; what: string }[]>();
  const claimPort = (
    proto: string,
    addr: string | null,
    port: number,
    path: PathSegment[],
    what: string,
  ) => {
    const bind = addr ?? "127.0.0.1";
    const key = `${proto}/${port}`;
    const list = ports.get(key) ?? [];
    const clash = list.find((o) => o.addr === bind || o.addr === "0.0.0.0" || bind === "0.0.0.0");
    if (clash) emit(path, `host port ${proto} ${port} is already forwarded by ${clash.what}`);
    list.push({ addr: bind, what });
    ports.set(key, list);
    if (port < 1024)
      emit(
        path,
        `host port ${port} is privileged: QEMU or qnet must run as root to bind it`,
        "warning",
      );
    if (addr === "0.0.0.0")
      emit(
        path,
        "this forward binds every host interface: the guest port is reachable from the whole LAN",
        "warning",
      );
  };
  for (const [net, spec] of t.networks) {
    if (spec.type === "bridged" || !spec.forwards) continue;
    spec.forwards.forEach((f, i) => {
      const path: PathSegment[] = ["networks", net, "forwards", i];
      const r = parseForward(f, spec.type === "bridge");
      if (!r.ok) {
        if (spec.type === "bridge") emit(path, `found ${show(f)}: ${r.reason}`);
        return;
      }
      const fw = r.value;
      if (spec.type === "bridge") {
        const target = fw.vm ? t.vms.get(fw.vm) : undefined;
        if (!target) {
          if (known?.vms.has(fw.vm ?? "")) return;
          const guess = didYouMean(fw.vm ?? "", [...t.vms.keys()]);
          emit(
            path,
            `forward ${show(f)} targets unknown VM "${fw.vm}"${guess ? ` (did you mean "${guess}"?)` : ""}`,
          );
          return;
        }
        if (!vmNets.get(fw.vm!)?.has(net)) {
          emit(path, `forward ${show(f)} targets VM ${fw.vm}, which has no NIC on network ${net}`);
          return;
        }
        if (gateways.get(net) === null) {
          emit(path, `forwards need the host on network ${net}: set a gateway`);
          return;
        }
        claimPort(fw.proto, fw.hostAddr, fw.hostPort, path, `network ${net} forward ${i}`);
      } else {
        // Each VM on a user network gets its own QEMU user stack, so each repeats the forward.
        for (const [vm, nets] of vmNets) {
          if (nets.has(net))
            claimPort(
              fw.proto,
              fw.hostAddr,
              fw.hostPort,
              path,
              `network ${net} forward ${i} of VM ${vm}`,
            );
        }
      }
    });
  }
  hostRules(t, emit);
  impairRules(t, emit);
}
