// From a script's host commands and QEMU invocations to a topology: networks, VMs, NICs, forwards.

import { parse as parseYaml } from "yaml";
import { broadcast, formatIpv4, parseCidr, parseIpv4 } from "../model/ipv4.js";
import { NAME_RE } from "../model/names.js";
import type { NetworkSpec, NicSpec, TopologyFile, VmSpec } from "../model/schema.js";
import { DEFAULTS } from "../resolve/resolve.js";
import { type Addr, HostReader, type LinkFact, maskToPrefix } from "./host-commands.js";
import type { ImportFinding, Loc } from "./located.js";
import {
  type Backend,
  isQemuBinary,
  type NicFact,
  parseHostfwd,
  QemuReader,
  type VmFact,
} from "./qemu-command.js";
import { Opts, parseQemuOpts } from "./qemu-opts.js";
import type { ShellCommand, ShellScript } from "./shell-script.js";

/** Where each part of the topology came from: comment lines keyed by the YAML path. */
export type Provenance = Map<string, string[]>;

export interface Inferred {
  topology: TopologyFile;
  /** Comment lines above a key (`networks.lan`, `vms.vm0`, `vms.vm0.nics.0`). */
  above: Provenance;
  /** One comment after a value (`networks.web.forwards.0`). */
  after: Map<string, string>;
  findings: ImportFinding[];
  /** The script is a `qnet export shell` (its first comment names the lab). */
  fromQnetExport: boolean;
}

export interface InferOptions {
  /** Lab name (`--name`); otherwise qnet's own `-name guest=LAB:VM`, the file name, or `lab`. */
  name?: string;
  /** The script's file name, for the default lab name. */
  file?: string;
}

const key = (...parts: (string | number)[]) => parts.join(".");

interface NetDraft {
  name: string;
  spec: NetworkSpec;
  sources: string[];
  /** Identity for matching NICs: bridge name, macvtap uplink, or user settings. */
  bridge?: string;
  userKey?: string;
}

function sanitizeName(s: string): string | null {
  const n = s
    .replace(/[^A-Za-z0-9_-]/g, "-")
    .replace(/^[-_]+/, "")
    .slice(0, 63);
  return NAME_RE.test(n) ? n : null;
}

/** The comment right above a QEMU line that names its VM: `# VM0`, `# vm1`, `# VM db: nic0 on lan`. */
function vmComment(comments: string[]): {
  name: string;
  nicNets: Map<number, string>;
  nicIps: Map<number, string>;
  user: string | null;
} | null {
  const last = comments.at(-1)?.trim();
  if (!last) return null;
  const full = /^VM\s+([A-Za-z0-9][A-Za-z0-9_-]{0,62})\s*:\s*(.*)$/.exec(last);
  if (full) {
    const nicNets = new Map<number, string>();
    const nicIps = new Map<number, string>();
    for (const m of full[2]!.matchAll(
      /nic(\d+) on ([A-Za-z0-9][A-Za-z0-9_-]{0,62})(?: (\d+\.\d+\.\d+\.\d+))?/g,
    )) {
      nicNets.set(Number(m[1]), m[2]!);
      if (m[3]) nicIps.set(Number(m[1]), m[3]);
    }
    const user = /taps owned by ([a-z_][a-z0-9_-]*)/.exec(full[2]!)?.[1] ?? null;
    return { name: full[1]!, nicNets, nicIps, user };
  }
  const single = /^([A-Za-z][A-Za-z0-9_-]{0,62}):?$/.exec(last);
  if (single)
    return { name: single[1]!.toLowerCase(), nicNets: new Map(), nicIps: new Map(), user: null };
  return null;
}

/** Which commands are QEMU invocations; pasted fragments (`-netdev … -device …`) count too. */
function isQemu(c: ShellCommand): "full" | "fragment" | null {
  const w0 = c.words[0]!.text;
  if (isQemuBinary(w0)) return "full";
  if (/^-(netdev|device|nic|net|m|smp|kernel|drive|hda|machine|M|name|append|initrd)$/.test(w0))
    return "fragment";
  return null;
}

export function inferTopology(script: ShellScript, opts: InferOptions = {}): Inferred {
  const findings: ImportFinding[] = [];
  const above: Provenance = new Map();
  const after = new Map<string, string>();
  const note = (path: string, line: string) => above.set(path, [...(above.get(path) ?? []), line]);
  for (const i of script.issues) findings.push(i);

  // Pass 1: the VMs. A fragment without a backend continues the fragment right before it.
  const qemuCmds: { c: ShellCommand; kind: "full" | "fragment" }[] = [];
  const hostCmds: ShellCommand[] = [];
  for (const c of script.commands) {
    const kind = isQemu(c);
    if (!kind) {
      hostCmds.push(c);
      continue;
    }
    const prev = qemuCmds.at(-1);
    const hasBackend = c.words.some((w) => /^-(netdev|nic|net)$/.test(w.text));
    if (
      kind === "fragment" &&
      prev &&
      !hasBackend &&
      c.comments.length === 0 &&
      prev.c === script.commands[script.commands.indexOf(c) - 1]
    ) {
      prev.c = { ...prev.c, words: [...prev.c.words, ...c.words] };
      continue;
    }
    qemuCmds.push({ c, kind });
  }
  const vms: (VmFact & { hint: ReturnType<typeof vmComment> })[] = qemuCmds.map(({ c, kind }) => ({
    ...new QemuReader(c, kind === "fragment").read(),
    hint: vmComment(c.comments),
  }));
  for (const v of vms) findings.push(...v.findings);

  // VM names: -name, the comment above, else vm (one VM) or vm0, vm1, ...
  const taken = new Set<string>();
  for (const v of vms) {
    const fromName = v.name ? sanitizeName(v.name) : null;
    if (v.name && fromName !== v.name) {
      findings.push({
        severity: "warning",
        loc: v.loc,
        message: `VM name "${v.name}" is not a qnet name; renamed`,
      });
    }
    let n = fromName;
    if (!n && v.hint) {
      n = sanitizeName(v.hint.name);
      if (n) v.nameFrom = `the comment "# ${v.comments.at(-1)}"`;
    }
    v.name = n && !taken.has(n) ? n : null;
    if (v.name) taken.add(v.name);
  }
  let counter = 0;
  for (const v of vms) {
    if (v.name) continue;
    let n = vms.length === 1 ? "vm" : `vm${counter++}`;
    while (taken.has(n)) n = `vm${counter++}`;
    v.name = n;
    taken.add(n);
  }
  const vmByName = new Map(vms.map((v) => [v.name!, v]));

  // Pass 2: the host, in script order, comments included (they name networks), guest lines apart.
  const host = new HostReader();
  const events: ({ at: number; comment: string; loc: Loc } | { at: number; cmd: ShellCommand })[] =
    [
      ...script.comments.map((c) => ({
        at: c.loc.line * 1e6 + c.loc.column,
        comment: c.text,
        loc: c.loc,
      })),
      ...hostCmds.map((c) => ({ at: c.loc.line * 1e6 + c.loc.column, cmd: c })),
    ].sort((a, b) => a.at - b.at);
  let guestCtx: string | null = null;
  const guestAddrs = new Map<string, { nic: number; addr: Addr; line: number }[]>();
  for (const e of events) {
    if ("comment" in e) {
      host.comment(e.comment, e.loc);
      const vc = vmComment([e.comment]);
      guestCtx = vc && vmByName.has(vc.name) ? vc.name : null;
      continue;
    }
    const c = e.cmd;
    if (guestCtx && guestLine(c, guestCtx, guestAddrs, findings)) continue;
    if (!host.command(c)) {
      findings.push({
        severity: "warning",
        loc: c.loc,
        message: `not imported: ${c.words
          .map((w) => w.raw)
          .join(" ")
          .slice(0, 100)} (a command qnet does not read)`,
      });
    }
  }
  const hm = host.m;
  findings.push(...hm.findings);

  // Which links are taps: made as taps, or named by a VM's -netdev tap,ifname=.
  const vmTaps = new Set<string>();
  for (const v of vms)
    for (const n of v.nics)
      if (n.backend.kind === "tap" && n.backend.ifname) vmTaps.add(n.backend.ifname);
  const isTap = (l: LinkFact) => l.kind === "tap" || vmTaps.has(l.name);
  const bridges = [...hm.links.values()].filter(
    (l) => l.kind === "bridge" || [...hm.links.values()].some((m) => m.master === l.name),
  );
  for (const b of bridges) b.kind = "bridge";

  // Networks from bridges.
  const nets: NetDraft[] = [];
  const bridgeCount = bridges.length;
  const netName = (hint: string | null | undefined, fallback: string) => hint ?? fallback;
  for (const b of bridges) {
    const members = [...hm.links.values()].filter((l) => l.master === b.name);
    const uplinks = members.filter((l) => !isTap(l) && l.kind !== "bridge");
    const addrs = hm.addrs.get(b.name) ?? [];
    const sources = [...b.sources];
    for (const m of members) for (const s of m.sources) if (!sources.includes(s)) sources.push(s);
    const fallback = bridgeCount === 1 ? "lan" : (sanitizeName(b.name) ?? "lan");
    const name = netName(b.hint?.name, fallback);
    if (uplinks.length > 0) {
      if (uplinks.length > 1)
        findings.push({
          severity: "warning",
          loc: uplinks[1]!.loc,
          message: `bridge ${b.name} holds several host interfaces (${uplinks.map((u) => u.name).join(", ")}): ${uplinks[0]!.name} taken as the uplink`,
        });
      const uplink = uplinks[0]!;
      const spec: NetworkSpec = { type: "bridged", uplink: uplink.name, bridge: b.name };
      if (b.viaNmcli || uplink.viaNmcli)
        note(
          key("networks", name),
          "made with nmcli in the script: qnet detects NetworkManager and moves the uplink through it",
        );
      if (addrs.length)
        note(
          key("networks", name),
          `${b.name}'s address ${addrs.map((a) => `${a.ip}/${a.prefix}`).join(", ")} comes from the LAN (qnet moves ${uplink.name}'s addresses onto the bridge)`,
        );
      nets.push({ name, spec, sources, bridge: b.name });
      continue;
    }
    const a = addrs[0];
    if (addrs.length > 1)
      findings.push({
        severity: "warning",
        loc: addrs[1]!.loc,
        message: `${b.name} has several addresses: ${a!.ip}/${a!.prefix} is the network's gateway, the others are not imported`,
      });
    let subnet: string;
    let gateway: string | undefined;
    if (a) {
      subnet = networkOf(a.ip, a.prefix);
      gateway = a.ip;
    } else {
      subnet = "";
      gateway = "none";
    }
    const spec: NetworkSpec = { type: "bridge", bridge: b.name, subnet, gateway, dhcp: false };
    nets.push({ name, spec, sources, bridge: b.name });
  }
  // macvtap links: bridged networks in macvtap mode, one per uplink.
  for (const l of hm.links.values()) {
    if (l.kind !== "macvtap" || !l.link) continue;
    let d = nets.find(
      (n) => n.spec.type === "bridged" && n.spec.mode === "macvtap" && n.spec.uplink === l.link,
    );
    if (!d) {
      const name = l.hint?.name ?? `${sanitizeName(l.link) ?? "lan"}`;
      const spec: NetworkSpec = { type: "bridged", uplink: l.link, mode: "macvtap" };
      const hb = l.hint ? /\(bridge ([A-Za-z0-9_.-]+)\)/.exec(l.hint.text)?.[1] : undefined;
      if (hb) spec.bridge = hb;
      if (l.mode !== "bridge")
        findings.push({
          severity: "warning",
          loc: l.loc,
          message: `macvtap mode ${l.mode}: qnet makes its macvtaps in bridge mode`,
        });
      d = { name, spec, sources: [] };
      nets.push(d);
    }
    d.sources.push(...l.sources);
  }

  // DHCP servers: the bridge they serve runs DHCP, and their fixed leases give NIC addresses.
  const leaseIp = new Map<string, string>();
  for (const d of hm.dhcp) {
    const n = nets.find((x) => x.bridge === d.iface);
    if (n?.spec.type !== "bridge") {
      findings.push({
        severity: "warning",
        loc: d.loc,
        message: `dnsmasq serves ${d.iface}, which is not a bridge of this script: not imported`,
      });
      continue;
    }
    n.spec.dhcp = true;
    n.sources.push(d.source);
    for (const h of d.hosts) leaseIp.set(h.mac, h.ip);
  }

  // The NICs: each backend leads to a network.
  const userNets = new Map<string, NetDraft>();
  const vmSpecs: Record<string, VmSpec> = {};
  const nicIps = new Map<string, { ip: string; why: string }>(); // key vm.nicIndex
  for (const v of vms) {
    const vname = v.name!;
    const nics: NicSpec[] = [];
    const spec: VmSpec = { nics };
    const vkey = key("vms", vname);
    note(
      vkey,
      `from line ${v.line}${v.fragment ? " (QEMU options pasted without the command)" : ""}${v.nameFrom ? `; named by ${v.nameFrom}` : ""}`,
    );
    // The built-in guest's kernel line carries each NIC's static address: qnet.nicN=MAC,IP/P[,GW].
    const appendIps = new Map<number, string>();
    if (v.kernel?.builtin && v.append) {
      for (const m of v.append.matchAll(
        /qnet\.nic(\d+)=([0-9a-f:]{17}),(\d+\.\d+\.\d+\.\d+)\/\d+/g,
      ))
        appendIps.set(Number(m[1]), m[3]!);
    }
    v.nics.forEach((nic, i) => {
      const net = nicNetwork(nic, v, i);
      if (!net) return;
      const idx = nics.length;
      const ns: NicSpec = { network: net.name };
      const ip =
        (nic.mac ? leaseIp.get(nic.mac.toLowerCase()) : undefined) ??
        appendIps.get(i) ??
        guestAddrs.get(vname)?.find((g) => g.nic === i)?.addr.ip ??
        seedIps(v.seedDrives, hm, nic.mac) ??
        v.hint?.nicIps.get(i);
      if (ip && net.spec.type === "bridge") ns.ip = ip;
      if (nic.mac) ns.mac = nic.mac;
      if (nic.model !== DEFAULTS.nicModel) ns.model = nic.model;
      nics.push(ns);
      if (ip) nicIps.set(`${vname}.${idx}`, { ip, why: "" });
      const nkey = key("vms", vname, "nics", idx);
      note(
        nkey,
        `${nic.source}${nic.modelDefault ? ` (no model given: QEMU's default ${nic.model})` : ""}${nic.mac ? "" : "; no MAC given: qnet derives one"}`,
      );
    });
    if (v.memory !== null && v.memory !== DEFAULTS.memory) spec.memory = v.memory;
    if (v.cpus !== null && v.cpus !== DEFAULTS.cpus) spec.cpus = v.cpus;
    if (v.kernel && !v.kernel.builtin) {
      spec.kernel = v.kernel.path;
      if (v.initrd) spec.initrd = v.initrd;
      if (v.append !== null) spec.append = v.append;
    } else if (v.kernel?.builtin) {
      note(vkey, "boots qnet's built-in guest (its kernel line is qnet's own)");
    } else if (v.disk) {
      spec.disk = v.disk;
      for (const s of v.seedDrives) {
        const key = sshKeyOf(s, hm);
        if (key) spec.sshKey = key;
      }
    } else if (v.initrd || v.append) {
      findings.push({
        severity: "warning",
        loc: v.loc,
        message: "-initrd/-append without -kernel: not imported",
      });
    }
    const qemu: NonNullable<VmSpec["qemu"]> = {};
    if (v.binary && v.binary !== DEFAULTS.qemuBinary) qemu.binary = v.binary;
    if (v.machine && v.machine !== DEFAULTS.machine) qemu.machine = v.machine;
    if (v.args.length) qemu.args = v.args;
    if (Object.keys(qemu).length) spec.qemu = qemu;
    // Tap owners: `ip tuntap add … user U`.
    const owners = new Set<string>();
    for (const nic of v.nics) {
      if (nic.backend.kind !== "tap" || !nic.backend.ifname) continue;
      const u = hm.links.get(nic.backend.ifname)?.user;
      if (u?.literal && /^[a-z_][a-z0-9_-]*$/.test(u.name)) owners.add(u.name);
      else if (u)
        note(
          vkey,
          `${nic.backend.ifname} was owned by ${u.name} (so QEMU could run as that user); qnet runs QEMU itself: set \`user:\` to give the taps an owner`,
        );
    }
    if (v.hint?.user) owners.add(v.hint.user);
    if (owners.size === 1) spec.user = [...owners][0]!;
    vmSpecs[vname] = spec;
  }

  function nicNetwork(
    nic: NicFact,
    v: VmFact & { hint: ReturnType<typeof vmComment> },
    i: number,
  ): NetDraft | null {
    const b: Backend = nic.backend;
    const named = v.hint?.nicNets.get(i);
    if (b.kind === "user") return userNetwork(b, v, named);
    if (b.kind === "tap" && b.fd) {
      const n = named ? nets.find((x) => x.name === named) : undefined;
      if (n) return n;
      findings.push({
        severity: "warning",
        loc: b.loc,
        message: "a tap passed as fd=: qnet cannot tell which network it is on; not imported",
      });
      return null;
    }
    const ifname = b.kind === "tap" ? b.ifname : null;
    const br = b.kind === "bridge" ? b.bridge : ifname ? hm.links.get(ifname)?.master : null;
    if (!br) {
      findings.push({
        severity: "warning",
        loc: b.loc,
        message: `${ifname ?? "the tap"} is on no bridge in this script: its NIC is not imported (add \`ip link set ${ifname ?? "TAP"} master BRIDGE\`)`,
      });
      return null;
    }
    const n = nets.find((x) => x.bridge === br);
    if (!n) {
      findings.push({
        severity: "warning",
        loc: b.loc,
        message: `bridge ${br} is not made in this script: the NIC is not imported`,
      });
      return null;
    }
    return n;
  }

  function userNetwork(
    b: Extract<Backend, { kind: "user" }>,
    v: VmFact,
    named: string | undefined,
  ): NetDraft {
    const o = b.opts;
    const spec: NetworkSpec & { type: "user" } = { type: "user" };
    const loc = b.loc;
    const netOpt = o.get("net");
    let base = parseCidr(DEFAULTS.userSubnet);
    if (netOpt !== undefined) {
      const [ip, mask] = netOpt.split("/");
      const prefix =
        mask === undefined ? 24 : /^\d+$/.test(mask) ? Number(mask) : maskToPrefix(mask);
      const r =
        prefix === null || parseIpv4(ip) === null ? null : parseCidr(networkOf(ip!, prefix));
      if (r?.ok) {
        base = r;
        const s = `${formatIpv4(r.subnet.base)}/${r.subnet.prefix}`;
        if (s !== DEFAULTS.userSubnet) spec.subnet = s;
      } else
        findings.push({
          severity: "warning",
          loc,
          message: `net=${netOpt} is not a subnet qnet reads; QEMU's default 10.0.2.0/24 used`,
        });
    }
    if (!base.ok) throw new Error("internal: default user subnet");
    const sb = base.subnet.base;
    const hostOpt = o.get("host");
    if (hostOpt !== undefined && parseIpv4(hostOpt) !== sb + 2)
      findings.push({
        severity: "warning",
        loc,
        message: `host=${hostOpt}: qnet puts QEMU's gateway at the subnet's second address (${formatIpv4(sb + 2)})`,
      });
    const dns = o.get("dns");
    if (dns !== undefined && parseIpv4(dns) !== sb + 3) spec.dns = dns;
    const dhcp = o.get("dhcpstart");
    if (dhcp !== undefined && parseIpv4(dhcp) !== sb + 15) spec.dhcpStart = dhcp;
    const restrict = o.get("restrict");
    if (restrict !== undefined && /^(on|yes|true|y)$/.test(restrict)) spec.restrict = true;
    const hostname = o.get("hostname");
    if (hostname !== undefined && hostname !== v.name)
      findings.push({
        severity: "note",
        loc,
        message: `hostname=${hostname}: qnet's user networks hand out the VM's name`,
      });
    const forwards: string[] = [];
    const fwNotes: string[] = [];
    for (const p of o.all("hostfwd")) {
      const f = parseHostfwd(p.value);
      const where = b.word.at(p.at);
      if (!f) {
        findings.push({
          severity: "error",
          loc: where,
          message: `hostfwd=${p.value}: expected [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`,
        });
        continue;
      }
      const addr = f.hostAddr === "" ? "0.0.0.0" : f.hostAddr;
      if (f.hostAddr === "") {
        findings.push({
          severity: "warning",
          loc: where,
          message: `hostfwd=${p.value}: an empty host address binds every interface, and the import keeps it so (0.0.0.0); qnet's default would be 127.0.0.1 (loopback only)`,
        });
      }
      if (
        f.guestAddr !== "" &&
        parseIpv4(f.guestAddr) !== parseIpv4(spec.dhcpStart ?? formatIpv4(sb + 15))
      )
        findings.push({
          severity: "warning",
          loc: where,
          message: `hostfwd=${p.value}: qnet forwards to the VM's DHCP address; guest address ${f.guestAddr} not kept`,
        });
      forwards.push(`${f.proto}:${addr}:${f.hostPort}:${f.guestPort}`);
      fwNotes.push(
        f.hostAddr === ""
          ? `hostfwd=${p.value} (line ${where.line}): empty address = every interface, kept; qnet's default is 127.0.0.1`
          : `hostfwd=${p.value} (line ${where.line})`,
      );
    }
    if (forwards.length) spec.forwards = forwards;
    const rest = o
      .rest()
      .filter((p) => !["type", "id", "vlan", "name", "model", "mac"].includes(p.key));
    if (rest.length)
      findings.push({
        severity: "warning",
        loc,
        message: `-netdev user: ${rest.map((p) => `${p.key}=${p.value}`).join(",")} not modelled by qnet and not kept`,
      });
    const userKey = JSON.stringify(spec);
    let d = named ? userNets.get(`name:${named}`) : userNets.get(userKey);
    if (!d) {
      const id = b.id && !/^net\d+$/.test(b.id) ? sanitizeName(b.id) : null;
      let name = named ?? id ?? "user";
      for (let k = 2; nets.some((n) => n.name === name); k++) name = `${named ?? id ?? "user"}${k}`;
      d = { name, spec, sources: [], userKey };
      nets.push(d);
      userNets.set(userKey, d);
      if (named) userNets.set(`name:${named}`, d);
      fwNotes.forEach((t, i) => {
        after.set(key("networks", name, "forwards", i), t);
      });
    }
    d.sources.push(`line ${loc.line}: -netdev/-nic/-net user of VM ${v.name}`);
    return d;
  }

  // Networks named by a `# network NAME: …` comment and made by no command (no VM uses them).
  for (const h of hm.hints) {
    if (nets.some((n) => n.name === h.name)) continue;
    const user = /^user\s+(\S+)/.exec(h.text);
    if (user) {
      const r = parseQemuOpts(user[1]!);
      if (!r.ok) continue;
      const fake = {
        kind: "user" as const,
        opts: new Opts(r.pairs),
        id: null,
        loc: h.loc,
        word: {
          text: user[1]!,
          raw: user[1]!,
          loc: h.loc,
          at: () => h.loc,
          literal: true,
          unknownVars: [],
        },
      };
      const d = userNetwork(fake, { name: "" } as VmFact, h.name);
      d.sources = [`line ${h.loc.line}: # network ${h.name}: ${h.text}`];
      continue;
    }
    const mv =
      /^bridged\s+(?:onto\s+)?([A-Za-z0-9_.-]+)\s+\(macvtap(?:, bridge ([A-Za-z0-9_.-]+))?\)/.exec(
        h.text,
      );
    if (mv) {
      const spec: NetworkSpec = { type: "bridged", uplink: mv[1]!, mode: "macvtap" };
      if (mv[2]) spec.bridge = mv[2];
      nets.push({
        name: h.name,
        spec,
        sources: [`line ${h.loc.line}: # network ${h.name}: ${h.text}`],
      });
    }
  }
  for (const h of hm.hints) {
    if (/names in the host's \/etc\/hosts/.test(h.text)) {
      const n = nets.find((x) => x.name === h.name);
      if (n?.spec.type === "bridge") n.spec.dns = "host";
    }
  }

  // NAT and DNAT forwards from nft or iptables lines.
  for (const f of hm.nat) {
    const n = nets.find((x) => x.spec.type === "bridge" && x.spec.subnet === f.subnet);
    if (n?.spec.type !== "bridge") {
      findings.push({
        severity: "warning",
        loc: f.loc,
        message: `masquerade of ${f.subnet}: no bridge network has that subnet; not imported`,
      });
      continue;
    }
    n.spec.nat = true;
    if (f.uplink) n.spec.uplink = f.uplink;
    n.sources.push(f.source);
  }
  for (const f of hm.dnat) {
    let target: { vm: string; net: NetDraft } | null = null;
    for (const [vname, spec] of Object.entries(vmSpecs)) {
      spec.nics.forEach((nic, i) => {
        const ip = nic.ip ?? nicIps.get(`${vname}.${i}`)?.ip;
        if (ip === f.target) {
          const net = nets.find((n) => n.name === nic.network);
          if (net?.spec.type === "bridge") target = { vm: vname, net };
        }
      });
    }
    const t = target as { vm: string; net: NetDraft } | null;
    if (t?.net.spec.type !== "bridge") {
      findings.push({
        severity: "warning",
        loc: f.loc,
        message: `forward to ${f.target}:${f.guestPort}: no VM has that address; not imported`,
      });
      continue;
    }
    t.net.spec.forwards ??= [];
    t.net.spec.forwards.push(`${f.proto}:${f.hostAddr}:${f.hostPort}:${t.vm}:${f.guestPort}`);
    if (f.hostAddr === "0.0.0.0")
      findings.push({
        severity: "warning",
        loc: f.loc,
        message: `forward of ${f.proto} port ${f.hostPort} binds every interface (0.0.0.0), kept as written; qnet's default would be 127.0.0.1`,
      });
    if (!t.net.sources.includes(f.source)) t.net.sources.push(f.source);
  }
  for (const h of hm.hosts) {
    for (const [vname, spec] of Object.entries(vmSpecs)) {
      spec.nics.forEach((nic, i) => {
        const ip = nic.ip ?? nicIps.get(`${vname}.${i}`)?.ip;
        const net = nets.find((n) => n.name === nic.network);
        if (ip === h.ip && h.names.includes(vname) && net?.spec.type === "bridge")
          net.spec.dns = "host";
      });
    }
  }

  // A bridge network with no address: qnet still needs its subnet (for the VMs' addresses).
  for (const n of nets) {
    if (n.spec.type !== "bridge" || n.spec.subnet !== "") continue;
    const ips = Object.values(vmSpecs).flatMap((s) =>
      s.nics.filter((x) => x.network === n.name && x.ip).map((x) => x.ip!),
    );
    const hinted = hm.hints.find(
      (h) => h.name === n.name && /(\d+\.\d+\.\d+\.\d+\/\d+)/.test(h.text),
    );
    const fromHint = hinted ? /(\d+\.\d+\.\d+\.\d+\/\d+)/.exec(hinted.text)![1]! : null;
    if (fromHint) n.spec.subnet = fromHint;
    else if (ips.length) {
      n.spec.subnet = `${ips[0]!.split(".").slice(0, 3).join(".")}.0/24`;
      findings.push({
        severity: "warning",
        loc: { line: 1, column: 1 },
        message: `bridge ${n.spec.bridge} has no address: subnet ${n.spec.subnet} guessed from the VMs' addresses`,
      });
    } else {
      n.spec.subnet = freeSubnet(nets);
      findings.push({
        severity: "warning",
        loc: { line: 1, column: 1 },
        message: `bridge ${n.spec.bridge} has no address and no VM address is known: subnet ${n.spec.subnet} is a placeholder, change it`,
      });
    }
  }
  // DHCP off where the script runs no DHCP server: say what the guests do instead.
  for (const n of nets) {
    if (n.spec.type === "bridge" && n.spec.dhcp === false && n.spec.gateway !== "none")
      note(
        key("networks", n.name),
        "no DHCP server in the script: addresses are fixed (qnet passes them to its built-in guest and to cloud-init); set dhcp: true for qnet's dnsmasq",
      );
  }

  // Lab name.
  const labs = [...new Set(vms.map((v) => v.lab).filter((x): x is string => !!x))];
  // qnet's own export names the lab in its first comment: `# Lab NAME (source): ...`.
  const labHint = script.comments
    .map((c) => /^\s*Lab ([A-Za-z0-9][A-Za-z0-9_-]{0,62}) \(/.exec(c.text)?.[1])
    .find((x) => x);
  if (labHint) labs.push(labHint);
  let name =
    opts.name ??
    labs[0] ??
    (opts.file ? sanitizeName(opts.file.replace(/^.*\//, "").replace(/\.[^.]*$/, "")) : null) ??
    "lab";
  if (!NAME_RE.test(name)) name = sanitizeName(name) ?? "lab";
  // Null-prototype records: names come from the script.
  const topology: TopologyFile = { name, networks: Object.create(null), vms: Object.create(null) };
  if (hm.netns) topology.netns = hm.netns;
  for (const n of nets) {
    topology.networks[n.name] = n.spec;
    const nk = key("networks", n.name);
    const byLine = [...new Set(n.sources)].sort((a, b) => lineOf(a) - lineOf(b));
    above.set(nk, [...byLine.map((s) => `from ${s}`), ...(above.get(nk) ?? [])]);
  }
  for (const [vname, spec] of Object.entries(vmSpecs)) topology.vms[vname] = spec;
  return { topology, above, after, findings, fromQnetExport: !!labHint };
}

/** Guest-side lines after a `# VM0` comment (the seed's `ifconfig eth0 10.0.2.2 netmask …`). */
function guestLine(
  c: ShellCommand,
  vm: string,
  out: Map<string, { nic: number; addr: Addr; line: number }[]>,
  findings: ImportFinding[],
): boolean {
  const w = c.words.map((x) => x.text);
  const cmd = w[0];
  const nicOf = (ifname: string) => {
    const m = /^(?:eth|ens|enp\d+s|eno)(\d+)$/.exec(ifname);
    return m ? Number(m[1]) : null;
  };
  if (cmd === "ifconfig" && w[1] && nicOf(w[1]) !== null) {
    const ip = w.find((x, i) => i > 1 && parseIpv4(x) !== null && w[i - 1] !== "netmask");
    const mi = w.indexOf("netmask");
    const prefix = mi > 0 ? maskToPrefix(w[mi + 1] ?? "") : 24;
    if (ip) {
      const n = /^eth(\d+)$/.test(w[1]) ? nicOf(w[1])! : 0;
      out.set(vm, [
        ...(out.get(vm) ?? []),
        { nic: n, addr: { ip, prefix: prefix ?? 24, loc: c.loc }, line: c.loc.line },
      ]);
      findings.push({
        severity: "note",
        loc: c.loc,
        message: `inside VM ${vm}: ${w[1]} ${ip} is its address (qnet configures it)`,
      });
      return true;
    }
  }
  if (cmd === "route" || (cmd === "ip" && (w[1] === "route" || w[1] === "r"))) {
    findings.push({
      severity: "note",
      loc: c.loc,
      message: `inside VM ${vm}: the default route goes through the network's gateway (qnet configures it)`,
    });
    return true;
  }
  return false;
}

const lineOf = (s: string) => Number(/^line (\d+)/.exec(s)?.[1] ?? 0);

/** The network address of `ip/prefix` in CIDR form (host bits cleared). */
function networkOf(ip: string, prefix: number): string {
  const n = parseIpv4(ip)!;
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return `${formatIpv4((n & mask) >>> 0)}/${prefix}`;
}

function freeSubnet(nets: NetDraft[]): string {
  for (let i = 0; i < 250; i++) {
    const s = `10.99.${i}.0/24`;
    if (!nets.some((n) => n.spec.type === "bridge" && n.spec.subnet === s)) return s;
  }
  return "10.98.0.0/24";
}

/** A file of a cloud-init seed the script builds (its here-document), parsed as YAML. */
function seedFile(seedImage: string, hm: HostReader["m"], name: string): unknown {
  const files = hm.seeds.get(seedImage);
  const f = files?.find((x) => x.endsWith(`/${name}`) || x === name);
  const text = f ? hm.files.get(f) : undefined;
  if (text === undefined) return null;
  try {
    return parseYaml(text);
  } catch {
    return null;
  }
}

/** The SSH key in a cloud-init seed's user-data: the first user's (qnet's seeds), or the top level's. */
function sshKeyOf(seedImage: string, hm: HostReader["m"]): string | null {
  const ud = seedFile(seedImage, hm, "user-data") as {
    ssh_authorized_keys?: unknown;
    users?: { ssh_authorized_keys?: unknown }[];
  } | null;
  const first = (k: unknown) =>
    Array.isArray(k) && typeof k.at(-1) === "string" ? k.at(-1) : null;
  const user = Array.isArray(ud?.users) ? ud.users[0] : undefined;
  return first(user?.ssh_authorized_keys) ?? first(ud?.ssh_authorized_keys);
}

/** A NIC's static address in a cloud-init seed's network-config (matched by MAC). */
function seedIps(seeds: string[], hm: HostReader["m"], mac: string | null): string | undefined {
  if (!mac) return undefined;
  for (const s of seeds) {
    const nc = seedFile(s, hm, "network-config") as {
      ethernets?: Record<string, { match?: { macaddress?: string }; addresses?: string[] }>;
    } | null;
    for (const e of Object.values(nc?.ethernets ?? {})) {
      if (e?.match?.macaddress?.toLowerCase() === mac.toLowerCase() && e.addresses?.[0])
        return e.addresses[0].split("/")[0];
    }
  }
  return undefined;
}

export { broadcast };
