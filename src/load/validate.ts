// Validation: the schema pass and the semantic rules, every error collected and located.
import type { z } from "zod";
import type { Diagnostic } from "../errors.js";
import { parseForward } from "../model/forward.js";
import {
  imageUrlProblem,
  knownImage,
  knownImageNames,
  SHA256_RE,
  SSH_USER_RE,
} from "../model/images.js";
import {
  broadcast,
  formatIpv4,
  inSubnet,
  overlaps,
  parseCidr,
  parseIpv4,
  type Subnet,
} from "../model/ipv4.js";
import {
  BridgedNetworkSchema,
  BridgeNetworkSchema,
  MAC_RE,
  NAME_RE,
  NetworkSchema,
  NicSchema,
  QemuSchema,
  type Topology,
  TopologySchema,
  UserNetworkSchema,
  VmSchema,
} from "../model/schema.js";
import { formatPath, type Parsed, type PathSegment } from "./parse.js";

/** Limits that keep a hostile file from costing more than a moment. */
export const LIMITS = { vms: 10_000, networks: 1_000, nicsPerVm: 28 } as const;

export interface Validated {
  topology: Topology | null;
  diagnostics: Diagnostic[];
}

type Emit = (
  path: PathSegment[],
  message: string,
  severity?: Diagnostic["severity"],
  which?: "value" | "key",
) => void;

export function validateTopology(parsed: Parsed): Validated {
  const diagnostics: Diagnostic[] = [...parsed.errors];
  const emit: Emit = (path, message, severity = "error", which = "value") => {
    const { line, column } = parsed.locate(path, which);
    diagnostics.push({
      severity,
      file: parsed.file,
      line,
      column,
      path: formatPath(path),
      message,
    });
  };
  if (diagnostics.length > 0) return { topology: null, diagnostics };
  const data = parsed.data;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    emit([], "the file must be a mapping with `name`, `networks` and `vms`");
    return { topology: null, diagnostics };
  }
  const raw = data as Record<string, unknown>;
  for (const [key, limit] of [
    ["vms", LIMITS.vms],
    ["networks", LIMITS.networks],
  ] as const) {
    const v = raw[key];
    if (v && typeof v === "object" && Object.keys(v).length > limit) {
      emit([key], `${Object.keys(v).length} entries; at most ${limit} are accepted`);
      return { topology: null, diagnostics };
    }
  }
  const result = TopologySchema.safeParse(data);
  if (!result.success) {
    for (const issue of result.error.issues) schemaIssue(issue, raw, emit);
    // Every error at once: the rules still run over the networks and VMs whose shape is right.
    semanticRules(partialTopology(raw), emit, {
      networks: new Set(Object.keys(asRecord(raw.networks))),
      vms: new Set(Object.keys(asRecord(raw.vms))),
    });
    return { topology: null, diagnostics };
  }
  semanticRules(result.data, emit, null);
  return {
    topology: diagnostics.some((d) => d.severity === "error") ? null : result.data,
    diagnostics,
  };
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = data;
  for (const seg of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

export function show(v: unknown): string {
  if (v === undefined) return "nothing";
  let s: string;
  try {
    s = typeof v === "string" ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** The keys allowed in the mapping at `path`, for did-you-mean hints. */
function keysAt(path: readonly PropertyKey[], data: unknown): string[] {
  const shapeKeys = (s: { shape: object }) => Object.keys(s.shape);
  if (path.length === 0) return shapeKeys(TopologySchema);
  if (path[0] === "networks" && path.length === 2) {
    const type = (valueAt(data, path) as { type?: unknown } | undefined)?.type;
    if (type === "user") return shapeKeys(UserNetworkSchema);
    if (type === "bridged") return shapeKeys(BridgedNetworkSchema);
    return shapeKeys(BridgeNetworkSchema);
  }
  if (path[0] === "vms" && path.length === 2) return shapeKeys(VmSchema);
  if (path[0] === "vms" && path[2] === "nics" && path.length === 4) return shapeKeys(NicSchema);
  if (path[0] === "vms" && path[2] === "qemu" && path.length === 3) return shapeKeys(QemuSchema);
  return [];
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

export function didYouMean(word: string, options: readonly string[]): string | null {
  // Names are at most 63 characters: a longer word is no typo, and comparing it would cost time.
  if (word.length > 100) return null;
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const o of options) {
    const d = editDistance(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = o;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

function schemaIssue(issue: z.core.$ZodIssue, data: unknown, emit: Emit): void {
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  const found = valueAt(data, path);
  switch (issue.code) {
    case "unrecognized_keys": {
      const allowed = keysAt(path, data).filter((k) => k !== "$schema");
      for (const key of issue.keys) {
        const guess = didYouMean(key, allowed);
        emit(
          [...path, key],
          `unknown key ${show(key)}${guess ? ` (did you mean "${guess}"?)` : ""}; allowed here: ${allowed.join(", ")}`,
          "error",
          "key",
        );
      }
      return;
    }
    case "invalid_union": {
      // zod 4 reports a bad discriminator at the `type` field itself; older shapes at the network.
      const atType = path.at(-1) === "type";
      const type = atType ? found : (found as { type?: unknown } | undefined)?.type;
      emit(
        atType || type === undefined ? path : [...path, "type"],
        type === undefined
          ? `required field is missing: a network needs a type, one of "user", "bridge", "bridged"`
          : `network type ${show(type)} is not one of "user", "bridge", "bridged"`,
      );
      return;
    }
    case "invalid_key": {
      emit(
        path,
        `the name ${show(path.at(-1))} is not allowed: ${issue.issues[0]?.message ?? issue.message}`,
        "error",
        "key",
      );
      return;
    }
    case "invalid_type": {
      if (found === undefined) emit(path, `required field is missing (expected ${issue.expected})`);
      else emit(path, `found ${show(found)}; expected ${issue.expected}`);
      return;
    }
    case "invalid_value": {
      emit(path, `found ${show(found)}; allowed: ${issue.values.map((v) => show(v)).join(", ")}`);
      return;
    }
    default:
      emit(path, `found ${show(found)}: ${issue.message}`);
  }
}

/** A VM's `image`, `sshKey`, `sshUser` and `persist`: what they need and what they refuse. */
function imageRules(spec: Topology["vms"][string], base: PathSegment[], emit: Emit): void {
  const seeded = spec.disk !== undefined || spec.image !== undefined;
  if (spec.sshKey !== undefined && !seeded) {
    emit([...base, "sshKey"], "`sshKey` goes into the cloud-init seed of a `disk` or `image` VM");
  }
  if (spec.sshUser !== undefined) {
    if (!seeded)
      emit([...base, "sshUser"], "`sshUser` is created by cloud-init: it needs `disk` or `image`");
    else if (!SSH_USER_RE.test(spec.sshUser) || spec.sshUser === "root")
      emit(
        [...base, "sshUser"],
        `found ${show(spec.sshUser)}; a login is 1-32 characters of [a-z0-9_-] starting with a letter or _, not root (it reaches cloud-init's YAML, sudoers and ssh)`,
      );
  }
  if (spec.persist !== undefined && spec.image === undefined) {
    emit([...base, "persist"], "`persist` keeps an `image` VM's overlay; this VM has no `image`");
  }
  const image = spec.image;
  if (image === undefined) return;
  if (typeof image === "string") {
    const known = knownImage(image);
    if (!known) {
      const guess = didYouMean(image, knownImageNames());
      emit(
        [...base, "image"],
        `unknown image ${show(image)}${guess ? ` (did you mean "${guess}"?)` : ""}; known: ${knownImageNames().join(", ")}, or { url, sha256 } for a downloaded one`,
      );
      return;
    }
    spec.nics.forEach((nic, i) => {
      if (nic.model !== undefined && !known.nicModels.includes(nic.model))
        emit(
          [...base, "nics", i, "model"],
          `image ${known.name} has no driver for NIC model ${show(nic.model)}; it drives ${known.nicModels.join(", ")}`,
        );
    });
    return;
  }
  const urlProblem = imageUrlProblem(image.url);
  if (urlProblem) emit([...base, "image", "url"], `found ${show(image.url)}: ${urlProblem}`);
  if (image.sha256 === undefined)
    emit(
      [...base, "image"],
      "an image URL needs `sha256`: qnet verifies every download (`sha256sum FILE` prints it)",
    );
  else if (!SHA256_RE.test(image.sha256))
    emit([...base, "image", "sha256"], `found ${show(image.sha256)}; expected 64 hex digits`);
}

const isMulticastMac = (mac: string) => (Number.parseInt(mac.slice(0, 2), 16) & 1) === 1;

const asRecord = (v: unknown): Record<string, unknown> =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/** The entries of a file that failed the schema whose own shape is right, for the semantic rules. */
function partialTopology(raw: Record<string, unknown>): Topology {
  const pick = <T>(v: unknown, schema: z.ZodType<T>): Record<string, T> =>
    Object.fromEntries(
      Object.entries(asRecord(v)).flatMap(([k, e]) => {
        const r = schema.safeParse(e);
        return NAME_RE.test(k) && r.success ? [[k, r.data]] : [];
      }),
    );
  return {
    name: typeof raw.name === "string" ? raw.name : "lab",
    networks: pick(raw.networks, NetworkSchema),
    vms: pick(raw.vms, VmSchema),
  };
}

/**
 * Rules the schema cannot express. `known` holds every name in the file when only a partial topology is
 * checked: a reference to a network or VM that exists but failed the schema is not reported again.
 */
function semanticRules(
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

  for (const [net, spec] of Object.entries(t.networks)) {
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
      if (spec.gateway === "none" && spec.dhcp !== false) {
        emit(
          [...base, "dhcp"],
          "DHCP needs the host on the network: set a gateway or `dhcp: false`",
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
          `subnet overlaps network ${a}'s (${t.networks[a]!.type === "bridge" ? (t.networks[a] as { subnet: string }).subnet : ""})`,
        );
      }
    }
  }

  const ips = new Map<string, string>();
  const macs = new Map<string, string>();
  const used = new Map<string, number>(); // per network: addresses taken by fixed IPs
  const needs = new Map<string, number>(); // per network: NICs needing an allocated address
  const vmNets = new Map<string, Set<string>>();
  for (const [vm, spec] of Object.entries(t.vms)) {
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
      const net = t.networks[nic.network];
      if (!net) {
        if (known?.networks.has(nic.network)) return;
        const defined = known ? [...known.networks] : Object.keys(t.networks);
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
  for (const [net, spec] of Object.entries(t.networks)) {
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
        const target = fw.vm ? t.vms[fw.vm] : undefined;
        if (!target) {
          if (known?.vms.has(fw.vm ?? "")) return;
          const guess = didYouMean(fw.vm ?? "", Object.keys(t.vms));
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
}
