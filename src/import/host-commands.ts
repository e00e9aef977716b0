// The host side of a script: what ip, brctl, ifconfig, nmcli, dnsmasq, nft and iptables lines build.
import { parseCidr, parseIpv4 } from "../model/ipv4.js";
import type { ImportFinding, Loc } from "./located.js";
import type { ShellCommand, ShellWord } from "./shell-script.js";

export interface Addr {
  ip: string;
  prefix: number;
  loc: Loc;
}

export interface LinkFact {
  name: string;
  kind: "bridge" | "tap" | "macvtap" | "other";
  loc: Loc;
  /** `line N: command` for each command that touched the link, for the file's comments. */
  sources: string[];
  /** Tap owner (`ip tuntap add … user U`), or the unresolved word (`$(whoami)`). */
  user: { name: string; literal: boolean } | null;
  master: string | null;
  /** macvtap: the link it sits on, and its mode. */
  link: string | null;
  mode: string | null;
  /** The `# network NAME: …` hint in force when the link was made. */
  hint: NetworkHint | null;
  viaNmcli: boolean;
}

export interface NetworkHint {
  name: string;
  /** The text after `network NAME:`. */
  text: string;
  loc: Loc;
}

export interface DhcpFact {
  iface: string | null;
  hosts: { mac: string; ip: string; name: string | null }[];
  loc: Loc;
  source: string;
}

export interface NatFact {
  subnet: string;
  uplink: string | null;
  loc: Loc;
  source: string;
}

export interface DnatFact {
  proto: "tcp" | "udp";
  hostAddr: string;
  hostPort: number;
  target: string;
  guestPort: number;
  loc: Loc;
  source: string;
}

export interface HostModel {
  netns: string | null;
  links: Map<string, LinkFact>;
  addrs: Map<string, Addr[]>;
  dhcp: DhcpFact[];
  nat: NatFact[];
  dnat: DnatFact[];
  /** /etc/hosts lines a script appends: address and names. */
  hosts: { ip: string; names: string[]; loc: Loc }[];
  /** Files a script writes with a here-document (`cat > FILE <<EOF`). */
  files: Map<string, string>;
  /** ISO images made with genisoimage -volid cidata: image path -> the files in it. */
  seeds: Map<string, string[]>;
  hints: NetworkHint[];
  findings: ImportFinding[];
}

export function emptyHostModel(): HostModel {
  return {
    netns: null,
    links: new Map(),
    addrs: new Map(),
    dhcp: [],
    nat: [],
    dnat: [],
    hosts: [],
    files: new Map(),
    seeds: new Map(),
    hints: [],
    findings: [],
  };
}

const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;
/** Commands that set up the shell or files, with no meaning for the network. */
const HOUSEKEEPING = new Set([
  "set",
  "mkdir",
  ":",
  "true",
  "echo",
  "printf",
  "cd",
  "export",
  "sleep",
  "wait",
  "trap",
  "exit",
  "modprobe",
  "chmod",
  "chown",
  "rm",
]);

export const hintRe = /^network\s+([A-Za-z0-9][A-Za-z0-9_-]{0,62})\s*:\s*(.*)$/;

function source(c: ShellCommand): string {
  const t = c.words.map((w) => w.raw).join(" ");
  return `line ${c.loc.line}: ${t.length > 90 ? `${t.slice(0, 87)}...` : t}`;
}

/** Netmask (255.255.255.0) to a prefix length, or null. */
export function maskToPrefix(mask: string): number | null {
  const n = parseIpv4(mask);
  if (n === null) return null;
  const bits = n.toString(2).padStart(32, "0");
  if (!/^1*0*$/.test(bits)) return null;
  return bits.indexOf("0") < 0 ? 32 : bits.indexOf("0");
}

function cidrAddr(s: string, loc: Loc): Addr | null {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(s);
  if (!m || parseIpv4(m[1]!) === null || Number(m[2]) > 32) return null;
  return { ip: m[1]!, prefix: Number(m[2]), loc };
}

export class HostReader {
  readonly m = emptyHostModel();
  private hint: NetworkHint | null = null;

  private finding(severity: ImportFinding["severity"], loc: Loc, message: string) {
    this.m.findings.push({ severity, loc, message });
  }

  private link(name: string, kind: LinkFact["kind"], c: ShellCommand): LinkFact {
    let l = this.m.links.get(name);
    if (!l) {
      l = {
        name,
        kind,
        loc: c.loc,
        sources: [],
        user: null,
        master: null,
        link: null,
        mode: null,
        hint: this.hint,
        viaNmcli: false,
      };
      this.m.links.set(name, l);
    } else if (l.kind === "other" && kind !== "other") l.kind = kind;
    if (!l.sources.includes(source(c))) l.sources.push(source(c));
    return l;
  }

  private addAddr(iface: string, a: Addr, c: ShellCommand) {
    const list = this.m.addrs.get(iface) ?? [];
    list.push(a);
    this.m.addrs.set(iface, list);
    this.link(iface, "other", c);
  }

  /** A comment of the script: `network NAME: …` names the network the next commands build. */
  comment(text: string, loc: Loc): void {
    const m = hintRe.exec(text.trim());
    if (m) {
      this.hint = { name: m[1]!, text: m[2]!.trim(), loc };
      this.m.hints.push(this.hint);
    }
  }

  /** Read one host command. Returns false when the command is not one the host side knows. */
  command(c: ShellCommand): boolean {
    if (c.netns) this.netns(c.netns, c);
    const w = c.words.map((x) => x.text);
    const cmd = w[0]!.replace(/^.*\//, "");
    if (c.stdout && cmd === "cat" && c.stdin !== null) {
      if (c.stdout.path === "/etc/hosts" && c.stdout.append) this.hostsLines(c.stdin, c);
      else this.m.files.set(c.stdout.path, c.stdin);
      return true;
    }
    switch (cmd) {
      case "ip":
        return this.ip(c, w.slice(1));
      case "brctl":
        return this.brctl(c, w.slice(1));
      case "ifconfig":
        return this.ifconfig(c, w.slice(1));
      case "nmcli":
        return this.nmcli(c, w.slice(1));
      case "dnsmasq":
        return this.dnsmasq(c, w.slice(1));
      case "nft":
        return this.nft(c, w.slice(1));
      case "iptables":
        return this.iptables(c, w.slice(1));
      case "sysctl":
        this.finding(
          "note",
          c.loc,
          `${c.words.map((x) => x.raw).join(" ")}: qnet sets the sysctls a lab needs itself (ip_forward for NAT and forwards, route_localnet for loopback forwards, nf_call_* 0 on its bridges)`,
        );
        return true;
      case "genisoimage":
      case "mkisofs": {
        const out = w[w.indexOf("-output") + 1] ?? w[w.indexOf("-o") + 1];
        if (w.includes("cidata") && out) {
          this.m.seeds.set(
            out,
            w.filter((x) => x.startsWith("/") && x !== out),
          );
          return true;
        }
        return false;
      }
      default:
        if (HOUSEKEEPING.has(cmd)) {
          this.finding("note", c.loc, `${cmd}: no network meaning, not imported`);
          return true;
        }
        return false;
    }
  }

  private netns(ns: string, c: ShellCommand) {
    if (this.m.netns && this.m.netns !== ns)
      this.finding(
        "warning",
        c.loc,
        `commands run in network namespace ${ns} and ${this.m.netns}: qnet runs a lab in one; ${this.m.netns} kept`,
      );
    else this.m.netns = ns;
  }

  private ip(c: ShellCommand, a: string[]): boolean {
    // Options before the object: -4, -n NS, -b...
    while (a[0]?.startsWith("-")) {
      if (a[0] === "-n" || a[0] === "-netns") {
        this.netns(a[1] ?? "", c);
        a = a.slice(2);
      } else a = a.slice(1);
    }
    const obj = a[0] ?? "";
    const verb = a[1] ?? "";
    const arg = (k: string) => {
      const i = a.indexOf(k, 2);
      return i >= 0 ? a[i + 1] : undefined;
    };
    if (obj === "netns") {
      if (verb === "add" && a[2]) {
        this.netns(a[2], c);
        return true;
      }
      return false;
    }
    if (obj === "tuntap" || obj === "tap") {
      if (verb !== "add") return false;
      const name = arg("dev") ?? arg("name") ?? a[2];
      if (!name || !IFNAME.test(name)) {
        this.finding("warning", c.loc, `ip tuntap add without a usable device name: not imported`);
        return true;
      }
      if (arg("mode") && arg("mode") !== "tap") {
        this.finding(
          "warning",
          c.loc,
          `${name}: a ${arg("mode")} device is not a tap; qnet uses taps only`,
        );
        return true;
      }
      const l = this.link(name, "tap", c);
      const ui = a.indexOf("user");
      if (ui >= 0 && a[ui + 1] !== undefined) {
        const uw = c.words.findIndex((x, j) => j > 0 && x.text === "user");
        l.user = { name: a[ui + 1]!, literal: c.words[uw + 1]?.literal ?? true };
      }
      return true;
    }
    if (obj.startsWith("l") && "link".startsWith(obj)) {
      if (verb === "add") {
        const type = arg("type");
        let name = arg("name") ?? arg("dev");
        if (!name) {
          const i = a.indexOf("type");
          const cand = a
            .slice(2, i < 0 ? undefined : i)
            .filter((_x, j, arr) => arr[j - 1] !== "link");
          name = cand.find((x) => x !== "link" && x !== "name");
        }
        if (!name || !IFNAME.test(name)) return false;
        if (type === "bridge") {
          this.link(name, "bridge", c);
          const master = arg("master");
          if (master) this.link(name, "bridge", c).master = master;
          return true;
        }
        if (type === "macvtap") {
          const l = this.link(name, "macvtap", c);
          l.link = arg("link") ?? null;
          l.mode = arg("mode") ?? "vepa";
          return true;
        }
        if (type === "tuntap" || type === "tap") {
          this.link(name, "tap", c);
          return true;
        }
        return false;
      }
      if (verb === "set") {
        const name = arg("dev") ?? a[2];
        if (!name || !IFNAME.test(name)) return false;
        const l = this.link(name, "other", c);
        const master = arg("master");
        if (master) l.master = master;
        if (a.includes("nomaster")) l.master = null;
        // up, alias, type bridge stp_state ...: qnet does these itself.
        return true;
      }
      if (verb === "del" || verb === "delete") {
        this.finding(
          "note",
          c.loc,
          `${a.join(" ")}: deletions are not imported (qnet down removes what it made)`,
        );
        return true;
      }
      return false;
    }
    if (obj.startsWith("a") && "address".startsWith(obj)) {
      if (verb !== "add" && verb !== "replace") return false;
      const dev = arg("dev");
      const cidr = a.slice(2).find((x) => x.includes("/") && cidrAddr(x, c.loc));
      if (!dev || !cidr) {
        this.finding(
          "warning",
          c.loc,
          `ip address ${verb}: needs ADDRESS/PREFIX and dev IFACE; not imported`,
        );
        return true;
      }
      this.addAddr(dev, cidrAddr(cidr, c.loc)!, c);
      return true;
    }
    if (obj.startsWith("r") && "route".startsWith(obj)) {
      this.finding(
        "note",
        c.loc,
        `ip route ${a.slice(1).join(" ")}: routes are not imported (qnet routes its subnets through their bridges)`,
      );
      return true;
    }
    return false;
  }

  private brctl(c: ShellCommand, a: string[]): boolean {
    const [verb, br, ...rest] = a;
    if (!br || !IFNAME.test(br)) return false;
    if (verb === "addbr") {
      this.link(br, "bridge", c);
      return true;
    }
    if (verb === "addif") {
      this.link(br, "bridge", c);
      for (const x of rest) if (IFNAME.test(x)) this.link(x, "other", c).master = br;
      return true;
    }
    if (verb === "stp" || verb === "setfd") {
      this.link(br, "bridge", c);
      this.finding(
        "note",
        c.loc,
        `brctl ${verb}: qnet makes its bridges with STP off and forward delay 0`,
      );
      return true;
    }
    if (verb === "delbr" || verb === "delif") {
      this.finding("note", c.loc, `brctl ${verb}: deletions are not imported`);
      return true;
    }
    return false;
  }

  private ifconfig(c: ShellCommand, a: string[]): boolean {
    const [iface, ...rest] = a;
    if (!iface || !IFNAME.test(iface)) return false;
    this.link(iface, "other", c);
    let addr: Addr | null = null;
    for (let i = 0; i < rest.length; i++) {
      const x = rest[i]!;
      if (x === "netmask" && addr) {
        const p = maskToPrefix(rest[i + 1] ?? "");
        if (p === null) {
          this.finding("warning", c.loc, `netmask ${rest[i + 1]} is not a netmask; /24 assumed`);
        } else addr.prefix = p;
        i++;
      } else if (parseIpv4(x) !== null && !addr) {
        addr = { ip: x, prefix: classfulPrefix(x), loc: c.loc };
      } else if (x.includes("/") && !addr) {
        addr = cidrAddr(x, c.loc);
      }
    }
    if (addr) this.addAddr(iface, addr, c);
    return true;
  }

  private nmcli(c: ShellCommand, a: string[]): boolean {
    while (a[0]?.startsWith("-")) a = a.slice(1);
    const [obj, verb, ...rest] = a;
    if (!obj || !"connection".startsWith(obj)) return false;
    if (verb === "up" || verb === "down" || verb === "reload") {
      this.finding("note", c.loc, `nmcli ${obj} ${verb}: qnet brings its links up itself`);
      return true;
    }
    if (verb !== "add" && verb !== "a") return false;
    const get = (k: string) => {
      const i = rest.indexOf(k);
      return i >= 0 ? rest[i + 1] : undefined;
    };
    const type = get("type");
    const ifname = get("ifname");
    if (!ifname || !IFNAME.test(ifname)) {
      this.finding("warning", c.loc, "nmcli connection add without ifname: not imported");
      return true;
    }
    const master = get("master") ?? get("controller");
    const slave = get("slave-type") ?? get("port-type");
    let l: LinkFact;
    if (type === "bridge") l = this.link(ifname, "bridge", c);
    else if (type === "tun" && (get("mode") ?? get("tun.mode")) === "tap")
      l = this.link(ifname, "tap", c);
    else l = this.link(ifname, "other", c);
    l.viaNmcli = true;
    if (master && (slave === "bridge" || type === "bridge-slave")) l.master = master;
    const addrs = get("ipv4.addresses") ?? get("ip4");
    if (addrs)
      for (const x of addrs.split(/[ ,]+/)) {
        const ad = cidrAddr(x, c.loc);
        if (ad) this.addAddr(ifname, ad, c);
      }
    return true;
  }

  private dnsmasq(c: ShellCommand, a: string[]): boolean {
    const fact: DhcpFact = { iface: null, hosts: [], loc: c.loc, source: source(c) };
    const lines: { line: string; word?: ShellWord }[] = [];
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!;
      if (x === "-i" && a[i + 1]) lines.push({ line: `interface=${a[++i]}` });
      else if (x === "-C" && a[i + 1]) lines.push({ line: `conf-file=${a[++i]}` });
      else if (x.startsWith("--")) lines.push({ line: x.slice(2) });
      else if (/^-[A-Za-z]$/.test(x) && a[i + 1] && !a[i + 1]!.startsWith("-")) i++;
    }
    const all: string[] = [];
    for (const { line } of lines) {
      if (line.startsWith("conf-file=")) {
        const f = line.slice("conf-file=".length);
        const text = this.m.files.get(f);
        if (text !== undefined) all.push(...text.split("\n"));
        else if (f !== "/dev/null")
          this.finding(
            "warning",
            c.loc,
            `dnsmasq reads ${f}, which this script does not write: its settings are not imported`,
          );
      } else all.push(line);
    }
    for (const raw of all) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      const eq = line.indexOf("=");
      const key = eq < 0 ? line : line.slice(0, eq);
      const val = eq < 0 ? "" : line.slice(eq + 1);
      if (key === "interface") fact.iface = val;
      else if (key === "dhcp-host") {
        const parts = val.split(",");
        const mac = parts.find((p) => /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(p));
        const ip = parts.find((p) => parseIpv4(p) !== null);
        const name =
          parts.find((p) => p !== mac && p !== ip && /^[A-Za-z][A-Za-z0-9_-]*$/.test(p)) ?? null;
        if (mac && ip) fact.hosts.push({ mac: mac.toLowerCase(), ip, name });
      }
    }
    if (!fact.iface) {
      this.finding(
        "warning",
        c.loc,
        "dnsmasq without interface=: qnet cannot tell which bridge it serves; not imported",
      );
      return true;
    }
    this.m.dhcp.push(fact);
    return true;
  }

  private nft(c: ShellCommand, a: string[]): boolean {
    const fi = a.indexOf("-f");
    if (fi < 0) return false;
    const file = a[fi + 1];
    // tree-sitter-bash drops a lone `-` right before `<<`: a missing file with a here-document is stdin.
    const stdin = file === "-" || file === "/dev/stdin" || (file === undefined && c.stdin !== null);
    const text = stdin ? c.stdin : file ? this.m.files.get(file) : undefined;
    if (text == null) {
      this.finding(
        "warning",
        c.loc,
        `nft -f ${file}: the ruleset is not in the script; not imported`,
      );
      return true;
    }
    const seen = new Set<string>();
    // qnet's output chain lists every forward in the file's order; prerouting repeats the non-loopback ones.
    const pre: DnatFact[] = [];
    let chain = "";
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      const ch = /^chain (\S+)/.exec(line);
      if (ch) chain = ch[1]!;
      if (!line || line.startsWith("#") || /^(table|delete table|chain|type|\}|flush)/.test(line))
        continue;
      let m =
        /^ip saddr (\S+\/\d+) (?:oifname "([^"]+)" |ip daddr != \S+ oifname != "[^"]+" )masquerade$/.exec(
          line,
        );
      if (m) {
        this.m.nat.push({ subnet: m[1]!, uplink: m[2] ?? null, loc: c.loc, source: source(c) });
        continue;
      }
      m =
        /^(?:ip daddr (\S+)|fib daddr type local) (tcp|udp) dport (\d+) dnat to (\S+):(\d+)$/.exec(
          line,
        );
      if (m) {
        const key = `${chain} ${line}`;
        if (seen.has(key)) continue; // the same forward in prerouting and output
        seen.add(key);
        (chain === "prerouting" ? pre : this.m.dnat).push({
          proto: m[2] as "tcp" | "udp",
          hostAddr: m[1] ?? "0.0.0.0",
          hostPort: Number(m[3]),
          target: m[4]!,
          guestPort: Number(m[5]),
          loc: c.loc,
          source: source(c),
        });
        continue;
      }
      if (/ct status dnat masquerade$/.test(line)) continue; // qnet's own return path for forwards
      this.finding("warning", c.loc, `nft rule not imported: ${line}`);
    }
    for (const d of pre) {
      const dup = this.m.dnat.some(
        (o) =>
          o.proto === d.proto &&
          o.hostAddr === d.hostAddr &&
          o.hostPort === d.hostPort &&
          o.target === d.target,
      );
      if (!dup) this.m.dnat.push(d);
    }
    return true;
  }

  private iptables(c: ShellCommand, a: string[]): boolean {
    const get = (...ks: string[]) => {
      for (const k of ks) {
        const i = a.indexOf(k);
        if (i >= 0) return a[i + 1];
      }
      return undefined;
    };
    if (get("-t") !== "nat") return false;
    const jump = get("-j");
    if (jump === "MASQUERADE" && get("-s")) {
      const s = get("-s")!;
      const r = parseCidr(s);
      if (!r.ok) return false;
      this.m.nat.push({ subnet: s, uplink: get("-o") ?? null, loc: c.loc, source: source(c) });
      return true;
    }
    if (jump === "DNAT") {
      const to = get("--to-destination", "--to");
      const m = to ? /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(to) : null;
      const port = Number(get("--dport", "--destination-port"));
      const proto = get("-p");
      if (!m || !port || (proto !== "tcp" && proto !== "udp")) return false;
      this.m.dnat.push({
        proto,
        hostAddr: get("-d") ?? "0.0.0.0",
        hostPort: port,
        target: m[1]!,
        guestPort: Number(m[2]),
        loc: c.loc,
        source: source(c),
      });
      return true;
    }
    return false;
  }

  private hostsLines(text: string, c: ShellCommand) {
    for (const raw of text.split("\n")) {
      const line = raw.replace(/#.*/, "").trim();
      if (!line) continue;
      const [ip, ...names] = line.split(/\s+/);
      if (ip && parseIpv4(ip) !== null && names.length)
        this.m.hosts.push({ ip, names, loc: c.loc });
    }
  }
}

/** ifconfig without a netmask uses the address's class: 10/8, 172.16/16, 192.168/24. */
function classfulPrefix(ip: string): number {
  const first = Number(ip.split(".")[0]);
  return first < 128 ? 8 : first < 192 ? 16 : 24;
}
