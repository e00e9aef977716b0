// Detects who manages a LAN uplink (NetworkManager, systemd-networkd, a DHCP client, nothing) and Wi-Fi.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type {
  DhcpClient,
  NmConnectionSettings,
  UplinkManager,
  UplinkSnapshot,
} from "../facts/types.js";
import { NM_FIELDS, splitNmcliTerse } from "../plan/uplink-manager.js";
import type { Runner } from "./runner.js";

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
  const nmcli = async (connection: string | null): Promise<UplinkManager> => ({
    kind: "nmcli",
    connection,
    settings: connection ? await nmConnectionSettings(runner, connection) : null,
  });
  if (forced === "nmcli") return nmcli((await nmDevice(runner, snap.name))?.connection ?? null);
  const nm = forced === null ? await nmDevice(runner, snap.name) : null;
  if (nm) return nmcli(nm.connection);
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
