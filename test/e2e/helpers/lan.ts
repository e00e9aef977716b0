// An emulated LAN for end-to-end tests: a `lan` namespace holding a router (a bridge with 192.168.50.1/24 and
// dnsmasq serving DHCP) whose wire is eth0 (192.168.50.2/24, default route) of a `host` namespace.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sh } from "./netns.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function pingFrom(ns: string, target: string): boolean {
  try {
    sh(["ip", "netns", "exec", ns, "ping", "-c1", "-W3", target]);
    return true;
  } catch {
    return false;
  }
}

/** The router side in `lan`, wired to eth0 of `host`; dnsmasq's files go to `dir`. */
export function startRouter(lan: string, host: string, dir: string): void {
  sh(["ip", "-n", lan, "link", "add", "name", "rbr", "type", "bridge"]);
  sh(["ip", "-n", lan, "addr", "add", "192.168.50.1/24", "dev", "rbr"]);
  sh(["ip", "-n", lan, "link", "set", "dev", "rbr", "up"]);
  const peer = `lb${process.pid % 100000}${host.length}`;
  sh([
    "ip",
    "link",
    "add",
    "name",
    peer,
    "netns",
    lan,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    host,
  ]);
  sh(["ip", "-n", lan, "link", "set", "dev", peer, "master", "rbr", "up"]);
  sh(["ip", "-n", host, "link", "set", "dev", "eth0", "up"]);
  sh(["ip", "-n", host, "addr", "add", "192.168.50.2/24", "dev", "eth0"]);
  sh(["ip", "-n", host, "route", "add", "default", "via", "192.168.50.1", "dev", "eth0"]);
  // dnsmasq forks into the background once its sockets are bound and its pidfile is written.
  sh([
    "ip",
    "netns",
    "exec",
    lan,
    "dnsmasq",
    "--conf-file=/dev/null",
    "--interface=rbr",
    "--except-interface=lo",
    "--bind-interfaces",
    "--dhcp-range=192.168.50.100,192.168.50.200,1h",
    "--dhcp-authoritative",
    "--no-ping",
    "--no-resolv",
    "--no-hosts",
    "--port=0",
    `--pid-file=${join(dir, "dnsmasq.pid")}`,
    `--dhcp-leasefile=${join(dir, "leases")}`,
    `--log-facility=${join(dir, "dnsmasq.log")}`,
    "--log-dhcp",
  ]);
}

export function routerPid(dir: string): number | null {
  const f = join(dir, "dnsmasq.pid");
  if (!existsSync(f)) return null;
  const pid = Number(readFileSync(f, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** Stop the router's dnsmasq (by its PID). */
export function stopRouter(dir: string): void {
  const pid = routerPid(dir);
  if (pid === null) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {}
}

/** The namespace settled: no IPv6 address still in duplicate address detection. */
export async function settled(ns: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (!sh(["ip", "-n", ns, "addr", "show"]).includes("tentative")) return;
    await sleep(100);
  }
  throw new Error(`addresses in namespace ${ns} stay tentative`);
}
