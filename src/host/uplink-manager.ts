// Detects who manages a LAN uplink (NetworkManager, systemd-networkd, a DHCP client, nothing) and Wi-Fi.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type {
  DhcpClient,
  NmFacts,
  NmUplink,
  UplinkManager,
  UplinkSnapshot,
} from "../facts/types.js";
import { nmHolds } from "../plan/uplink-nm.js";
import { type NmProcess, readNmSettings } from "./network-manager.js";
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

/** NetworkManager of the namespace, as observed once: how to reach it and what it said. */
export interface NmContext {
  proc: NmProcess;
  facts: NmFacts;
}

/** NetworkManager's hold on the uplink: its device state, its active profile and that profile's settings. */
export async function nmUplink(
  runner: Runner,
  uplink: string,
  nm: NmContext | null,
): Promise<NmUplink> {
  if (!nm) return { kind: "nmcli", state: "absent", profile: null, settings: null };
  if (!nm.facts.running)
    return { kind: "nmcli", state: "unreachable", profile: null, settings: null };
  const dev = nm.facts.devices.find((d) => d.device === uplink);
  const state = dev?.state ?? "unmanaged";
  const profile = dev?.profile ?? null;
  const settings =
    profile && !state.includes("externally")
      ? await readNmSettings(runner, nm.proc, profile)
      : null;
  return { kind: "nmcli", state, profile, settings };
}

/**
 * Detect who manages the uplink. `forced` (the network's `backend`) skips detection: `nmcli` still reads
 * NetworkManager's hold (the kind refuses when there is none), `iproute2` looks at DHCP clients only.
 */
export async function detectManager(
  runner: Runner,
  snap: UplinkSnapshot,
  forced: "nmcli" | "iproute2" | null,
  opts: DetectOptions = {},
  nm: NmContext | null = null,
): Promise<UplinkManager> {
  if (forced !== "iproute2") {
    const held = await nmUplink(runner, snap.name, nm);
    if (forced === "nmcli" || held.state === "unreachable" || nmHolds(held)) return held;
  }
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
