// Who manages a LAN uplink (NetworkManager, systemd-networkd, a DHCP client, nothing), Wi-Fi refusal, nmcli plans.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { UserError } from "../errors.js";
import type { UplinkSnapshot } from "../plan/uplink-plan.js";
import type { Runner } from "./runner.js";

export type UplinkManager =
  | { kind: "nmcli"; connection: string | null }
  | { kind: "networkd"; networkFile: string | null }
  | { kind: "dhcp"; clients: DhcpClient[]; dynamic: string[] }
  | { kind: "none" };

export interface DhcpClient {
  pid: number;
  argv: string[];
}

export interface DetectOptions {
  /** Where sysfs is mounted (tests pass a fake tree); default QNET_SYSFS_ROOT or /sys. */
  sysfsRoot?: string;
  /** Where procfs is mounted; default /proc. */
  procRoot?: string;
  /** Where /run is; default /run (systemd-networkd's state is in <run>/systemd/netif/links). */
  runRoot?: string;
}

export function sysfsRootOf(opts: DetectOptions): string {
  return opts.sysfsRoot ?? process.env.QNET_SYSFS_ROOT ?? "/sys";
}

/** True when the uplink is an 802.11 interface (sysfs has `wireless` or `phy80211` under it). */
export async function isWireless(
  runner: Runner,
  uplink: string,
  opts: DetectOptions = {},
): Promise<boolean> {
  const root = sysfsRootOf(opts);
  if (root === "/sys" && runner.netns) {
    // /sys shows the namespace that mounted it; `ip netns exec` remounts it for the lab's namespace.
    const r = await runner.run(["ls", "-A", `/sys/class/net/${uplink}/`], { allowFail: true });
    const names = r.stdout.split("\n").map((l) => l.trim());
    return names.includes("wireless") || names.includes("phy80211");
  }
  const dir = join(root, "class", "net", uplink);
  return existsSync(join(dir, "wireless")) || existsSync(join(dir, "phy80211"));
}

/** Refuse a Wi-Fi uplink, explaining why and what to use instead. */
export async function refuseWireless(
  runner: Runner,
  network: string,
  uplink: string,
  opts: DetectOptions = {},
): Promise<void> {
  if (!(await isWireless(runner, uplink, opts))) return;
  throw new UserError(
    `network ${network}: uplink ${uplink} is a wireless (802.11) interface and cannot be bridged: ` +
      "a Wi-Fi station may only send frames with its own MAC address (the access point drops frames " +
      "from other MACs unless 4-address/WDS mode is enabled on both ends), so the VMs behind a bridge " +
      "would never get through",
    "use `mode: macvtap` on this network (or a routed `type: bridge` network with `nat: true`), or a wired uplink",
  );
}

/** NetworkManager's view: the device's state and active connection, or null when NM does not manage it. */
export async function nmDevice(
  runner: Runner,
  uplink: string,
): Promise<{ state: string; connection: string | null } | null> {
  const r = await runner.run(["nmcli", "-t", "-f", "DEVICE,STATE,CONNECTION", "device"], {
    allowFail: true,
  });
  if (r.exitCode !== 0) return null;
  for (const line of r.stdout.split("\n")) {
    const fields = splitNmcliTerse(line);
    if (fields[0] !== uplink) continue;
    const state = fields[1] ?? "";
    if (state === "" || state.startsWith("unmanaged")) return null;
    const connection = fields[2] && fields[2] !== "--" ? fields[2] : null;
    return { state, connection };
  }
  return null;
}

/** Split one line of `nmcli -t` output: fields are separated by `:`, and `\:` / `\\` escape. */
export function splitNmcliTerse(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "\\" && i + 1 < line.length) {
      cur += line[++i];
    } else if (c === ":") {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** systemd-networkd manages the link when its state file says the link is configured by it. */
export function networkdLink(
  ifindex: number,
  opts: DetectOptions = {},
): { networkFile: string | null } | null {
  const path = join(opts.runRoot ?? "/run", "systemd", "netif", "links", String(ifindex));
  if (!existsSync(path)) return null;
  const text = readFileSync(path, "utf8");
  const admin = /^ADMIN_STATE=(.*)$/m.exec(text)?.[1] ?? "";
  if (!["configured", "configuring"].includes(admin)) return null;
  return { networkFile: /^NETWORK_FILE=(.*)$/m.exec(text)?.[1] ?? null };
}

const DHCP_CLIENTS = new Set(["dhclient", "udhcpc", "dhcpcd", "dhcpcd5"]);

/** DHCP client processes whose argv names the uplink, in the same network namespace as `netnsPath`. */
export function dhcpClients(
  uplink: string,
  opts: DetectOptions & { netnsPath?: string } = {},
): DhcpClient[] {
  const proc = opts.procRoot ?? "/proc";
  let wantIno: number | null = null;
  try {
    if (opts.netnsPath) wantIno = statSync(opts.netnsPath).ino;
  } catch {
    wantIno = null;
  }
  const out: DhcpClient[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(proc).filter((e) => /^\d+$/.test(e));
  } catch {
    return out;
  }
  for (const pid of entries) {
    let argv: string[];
    try {
      argv = readFileSync(join(proc, pid, "cmdline"), "utf8")
        .split("\0")
        .filter((a) => a !== "");
    } catch {
      continue;
    }
    if (argv.length === 0 || !DHCP_CLIENTS.has(basename(argv[0]!))) continue;
    const names = argv.slice(1).some((a) => a === uplink || a.endsWith(`=${uplink}`));
    if (!names) continue;
    if (wantIno !== null) {
      try {
        if (statSync(join(proc, pid, "ns", "net")).ino !== wantIno) continue;
      } catch {
        continue;
      }
    }
    out.push({ pid: Number(pid), argv });
  }
  return out;
}

/** Detect who manages the uplink. `forced` (the network's `backend`) skips detection. */
export async function detectManager(
  runner: Runner,
  snap: UplinkSnapshot,
  forced: "nmcli" | "iproute2" | null,
  opts: DetectOptions = {},
): Promise<UplinkManager> {
  if (forced === "nmcli")
    return { kind: "nmcli", connection: (await nmDevice(runner, snap.name))?.connection ?? null };
  const nm = forced === null ? await nmDevice(runner, snap.name) : null;
  if (nm) return { kind: "nmcli", connection: nm.connection };
  // networkd runs in the host's namespace only; a lab namespace's ifindexes mean nothing to it.
  const nd = forced === null && !runner.netns ? networkdLink(snap.ifindex, opts) : null;
  if (nd) return { kind: "networkd", networkFile: nd.networkFile };
  const clients = dhcpClients(snap.name, {
    ...opts,
    netnsPath: runner.netns ? `/run/netns/${runner.netns}` : "/proc/self/ns/net",
  });
  const dynamic = snap.addrs
    .filter((a) => a.dynamic && a.family === "inet")
    .map((a) => `${a.local}/${a.prefixlen}`);
  if (clients.length > 0 || dynamic.length > 0) return { kind: "dhcp", clients, dynamic };
  return { kind: "none" };
}

/** The refusal for a systemd-networkd uplink: networkd would undo a change made behind its back. */
export function networkdRefusal(
  network: string,
  uplink: string,
  bridge: string,
  file: string | null,
): UserError {
  return new UserError(
    `network ${network}: ${uplink} is managed by systemd-networkd${file ? ` (${file})` : ""}, which would ` +
      "put the addresses back on it at its next reconfiguration; qnet does not move it behind networkd's back",
    `configure the bridge in networkd instead: a ${bridge}.netdev with [NetDev] Name=${bridge} Kind=bridge ` +
      `and MACAddress=<${uplink}'s MAC>, a .network matching ${uplink} with [Network] Bridge=${bridge}, and ` +
      `move the Address=/DHCP=/Gateway= settings to a .network matching ${bridge}; then give qnet the ` +
      `existing bridge, or set \`backend: iproute2\` to force the move anyway`,
  );
}

/** What the plan says about a DHCP client holding a lease on the uplink. */
export function dhcpNote(
  uplink: string,
  bridge: string,
  m: UplinkManager & { kind: "dhcp" },
): string {
  const who = m.clients.length
    ? m.clients.map((c) => `pid ${c.pid} (${c.argv.join(" ")})`).join(", ")
    : "a DHCP client (addresses flagged dynamic)";
  return (
    `${uplink} holds a DHCP lease (${m.dynamic.join(", ") || "client running"}) from ${who}: the address moved to ` +
    `${bridge} with its remaining lifetime, but the client still runs on ${uplink}; restart it on ${bridge} ` +
    `(e.g. the same command with ${bridge} instead of ${uplink}) before the lease expires`
  );
}

/** Settings of the uplink's NetworkManager connection that the bridge connection copies. */
export interface NmConnectionSettings {
  id: string;
  ipv4: { method: string; addresses: string; gateway: string; dns: string };
  ipv6: { method: string; addresses: string; gateway: string; dns: string };
}

export const NM_FIELDS = [
  "ipv4.method",
  "ipv4.addresses",
  "ipv4.gateway",
  "ipv4.dns",
  "ipv6.method",
  "ipv6.addresses",
  "ipv6.gateway",
  "ipv6.dns",
] as const;

/** Read the settings of a connection (`nmcli -g` prints one value per line, in field order). */
export async function nmConnectionSettings(
  runner: Runner,
  id: string,
): Promise<NmConnectionSettings> {
  const r = await runner.run(["nmcli", "-g", NM_FIELDS.join(","), "connection", "show", "id", id]);
  const v = r.stdout.split("\n").map((l) => l.replace(/\\:/g, ":").trim());
  const at = (i: number) => v[i] ?? "";
  return {
    id,
    ipv4: { method: at(0), addresses: at(1), gateway: at(2), dns: at(3) },
    ipv6: { method: at(4), addresses: at(5), gateway: at(6), dns: at(7) },
  };
}

/** The nmcli argv that moves the uplink onto a bridge, and the argv that undoes it (the seed's way). */
export function planNmcli(opts: {
  lab: string;
  uplink: string;
  bridge: string;
  mac: string;
  settings: NmConnectionSettings | null;
}): { apply: string[][]; inverse: string[][]; bridgeCon: string; portCon: string } {
  const bridgeCon = `qnet-${opts.lab}-${opts.bridge}`;
  const portCon = `qnet-${opts.lab}-${opts.uplink}`;
  const ip: string[] = [];
  for (const fam of ["ipv4", "ipv6"] as const) {
    const s = opts.settings?.[fam];
    if (!s?.method) continue;
    ip.push(`${fam}.method`, s.method);
    if (s.addresses) ip.push(`${fam}.addresses`, s.addresses);
    if (s.gateway) ip.push(`${fam}.gateway`, s.gateway);
    if (s.dns) ip.push(`${fam}.dns`, s.dns);
  }
  const apply = [
    // autoconnect no: the lab is run-time state; after a reboot the host comes back on its own connection.
    [
      "nmcli",
      "connection",
      "add",
      "type",
      "bridge",
      "ifname",
      opts.bridge,
      "con-name",
      bridgeCon,
      "connection.autoconnect",
      "no",
      "bridge.stp",
      "no",
      "bridge.forward-delay",
      "0",
      "ethernet.cloned-mac-address",
      opts.mac,
      ...ip,
    ],
    [
      "nmcli",
      "connection",
      "add",
      "type",
      "ethernet",
      "slave-type",
      "bridge",
      "con-name",
      portCon,
      "ifname",
      opts.uplink,
      "master",
      opts.bridge,
      "connection.autoconnect",
      "no",
    ],
    ["nmcli", "connection", "up", "id", portCon],
    ["nmcli", "connection", "up", "id", bridgeCon],
  ];
  const inverse = [
    ...(opts.settings ? [["nmcli", "connection", "up", "id", opts.settings.id]] : []),
    ["nmcli", "connection", "delete", "id", portCon],
    ["nmcli", "connection", "delete", "id", bridgeCon],
  ];
  return { apply, inverse, bridgeCon, portCon };
}
