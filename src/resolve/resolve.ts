// Resolution: a valid topology becomes a Lab, with every default and derived value filled in one place.
import { parseForward } from "../model/forward.js";
import { DEFAULT_SSH_USER } from "../model/images.js";
import { mergeImpairments, parseImpairSpec } from "../model/impair.js";
import { broadcast, formatIpv4, parseCidr, parseIpv4, type Subnet } from "../model/ipv4.js";
import type { Forward, Lab, Network, Nic, Vm } from "../model/lab.js";
import type { NetworkSpec, Topology, VmSpec } from "../model/schema.js";
import { placeOnHosts } from "./hosts.js";
import { deriveIfname, deriveMac } from "./names.js";

export const DEFAULTS = {
  userSubnet: "10.0.2.0/24",
  nicModel: "virtio-net-pci",
  memory: 256,
  cpus: 1,
  qemuBinary: "qemu-system-x86_64",
  machine: "q35",
  forwardAddr: "127.0.0.1",
} as const;

const byName = <T>(m: Map<string, T>): [string, T][] =>
  [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

function subnetOf(s: string): Subnet {
  const r = parseCidr(s);
  if (!r.ok) throw new Error(`internal: unvalidated subnet ${s}`);
  return r.subnet;
}

function forwardsOf(specs: string[] | undefined, withVm: boolean): Forward[] {
  return (specs ?? []).map((spec) => {
    const r = parseForward(spec, withVm);
    if (!r.ok) throw new Error(`internal: unvalidated forward ${spec}`);
    const f = r.value;
    return {
      proto: f.proto,
      hostAddr: f.hostAddr ?? DEFAULTS.forwardAddr,
      hostPort: f.hostPort,
      guestPort: f.guestPort,
      ...(f.vm ? { vm: f.vm } : {}),
      spec,
    };
  });
}

/** Resolve a validated topology. Deterministic: the same file gives the same lab, every run. */
export function resolveLab(t: Topology): Lab {
  const ifnames = new Set<string>();
  // Names fixed in the file are reserved first, so derived names never take them.
  for (const spec of t.networks.values()) {
    if (spec.type !== "user" && spec.bridge) ifnames.add(spec.bridge);
    if (spec.type === "bridged") ifnames.add(spec.uplink);
  }
  const networks: Network[] = byName(t.networks).map(([name, spec]) =>
    resolveNetwork(t.name, name, spec, ifnames),
  );
  const netByName = new Map(networks.map((n) => [n.name, n]));

  const macs = new Set<string>();
  const fixedIps = new Map<string, Set<number>>();
  for (const vm of t.vms.values()) {
    for (const nic of vm.nics) {
      if (nic.mac) macs.add(nic.mac.toLowerCase());
      if (nic.ip) {
        const set = fixedIps.get(nic.network) ?? new Set();
        set.add(parseIpv4(nic.ip)!);
        fixedIps.set(nic.network, set);
      }
    }
  }
  const nextFree = new Map<string, number>();
  const allocate = (net: Network & { type: "bridge" }): string => {
    const s = subnetOf(net.subnet);
    const gw = net.gateway ? parseIpv4(net.gateway) : null;
    const taken = fixedIps.get(net.name) ?? new Set<number>();
    let ip = nextFree.get(net.name) ?? s.base + 1;
    while (ip === gw || taken.has(ip)) ip++;
    if (ip >= broadcast(s)) throw new Error(`internal: subnet ${net.subnet} exhausted`);
    nextFree.set(net.name, ip + 1);
    return formatIpv4(ip);
  };

  const vms: Vm[] = byName(t.vms).map(([name, spec]) =>
    resolveVm(t, name, spec, netByName, macs, ifnames, allocate),
  );
  return placeOnHosts(
    t,
    {
      name: t.name,
      netns: t.netns ?? null,
      boot: t.boot ?? "instant",
      sshKey: t.sshKey ?? null,
      networks,
      vms,
    },
    ifnames,
  );
}

function resolveNetwork(
  lab: string,
  name: string,
  spec: NetworkSpec,
  ifnames: Set<string>,
): Network {
  switch (spec.type) {
    case "user": {
      const s = subnetOf(spec.subnet ?? DEFAULTS.userSubnet);
      return {
        type: "user",
        name,
        subnet: `${formatIpv4(s.base)}/${s.prefix}`,
        prefix: s.prefix,
        hostAddr: formatIpv4(s.base + 2),
        dns: spec.dns ?? formatIpv4(s.base + 3),
        dhcpStart: spec.dhcpStart ?? formatIpv4(s.base + 15),
        restrict: spec.restrict ?? false,
        forwards: forwardsOf(spec.forwards, false),
      };
    }
    case "bridge": {
      const s = subnetOf(spec.subnet);
      const gateway = spec.gateway === "none" ? null : (spec.gateway ?? formatIpv4(s.base + 1));
      return {
        type: "bridge",
        name,
        bridge: spec.bridge ?? deriveIfname("qnbr-", ifnames, lab, name),
        subnet: spec.subnet,
        prefix: s.prefix,
        gateway,
        // No host on the network (gateway none): no DHCP server either, unless the file asks for one.
        dhcp: spec.dhcp ?? gateway !== null,
        nat: spec.nat ?? false,
        uplink: spec.uplink ?? null,
        dnsHost: spec.dns === "host",
        forwards: forwardsOf(spec.forwards, true),
      };
    }
    case "bridged":
      return {
        type: "bridged",
        name,
        bridge: spec.bridge ?? deriveIfname("qnbr-", ifnames, lab, name),
        uplink: spec.uplink,
        mode: spec.mode ?? "bridge",
        backend: spec.backend ?? null,
        probe: spec.probe ?? null,
      };
  }
}

function resolveVm(
  t: Topology,
  name: string,
  spec: VmSpec,
  nets: Map<string, Network>,
  macs: Set<string>,
  ifnames: Set<string>,
  allocate: (net: Network & { type: "bridge" }) => string,
): Vm {
  const nics: Nic[] = spec.nics.map((n, index) => {
    const net = nets.get(n.network)!;
    const netSpec = t.networks.get(n.network);
    const impair = mergeImpairments(
      netSpec?.impair ? parseImpairSpec(netSpec.impair) : null,
      n.impair ? parseImpairSpec(n.impair) : null,
    );
    const mac = n.mac?.toLowerCase() ?? deriveMac(t.name, name, index, macs);
    let ip: string | null = null;
    let prefix: number | null = null;
    let gateway: string | null = null;
    if (net.type === "bridge") {
      ip = n.ip ?? allocate(net);
      prefix = net.prefix;
      gateway = net.gateway;
    } else if (net.type === "user") {
      ip = net.dhcpStart;
      prefix = net.prefix;
      gateway = net.hostAddr;
    }
    return {
      index,
      network: net.name,
      networkType: net.type,
      model: n.model ?? DEFAULTS.nicModel,
      mac,
      ip,
      prefix,
      gateway,
      netdevId: `net${index}`,
      tap:
        net.type === "user" ? null : deriveIfname("qntap-", ifnames, t.name, name, String(index)),
      ...(impair ? { impair } : {}),
    };
  });
  const guest: Vm["guest"] = spec.kernel
    ? {
        kind: "kernel",
        kernel: spec.kernel,
        initrd: spec.initrd ?? null,
        append: spec.append ?? null,
      }
    : spec.disk
      ? {
          kind: "disk",
          disk: spec.disk,
          sshKey: spec.sshKey ?? null,
          sshUser: spec.sshUser ?? DEFAULT_SSH_USER,
        }
      : spec.image !== undefined
        ? {
            kind: "image",
            image:
              typeof spec.image === "string"
                ? { kind: "named", name: spec.image }
                : { kind: "url", url: spec.image.url, sha256: spec.image.sha256!.toLowerCase() },
            sshKey: spec.sshKey ?? null,
            sshUser: spec.sshUser ?? DEFAULT_SSH_USER,
            persist: spec.persist ?? false,
          }
        : { kind: "builtin" };
  return {
    name,
    nics,
    guest,
    memory: spec.memory ?? DEFAULTS.memory,
    cpus: spec.cpus ?? DEFAULTS.cpus,
    user: spec.user ?? t.user ?? null,
    qemu: {
      binary: spec.qemu?.binary ?? DEFAULTS.qemuBinary,
      machine: spec.qemu?.machine ?? DEFAULTS.machine,
      args: spec.qemu?.args ?? [],
    },
  };
}
