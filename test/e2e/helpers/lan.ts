// An emulated LAN for end-to-end tests: a `lan` namespace holding a router (a bridge with 192.168.50.1/24 and
// dnsmasq serving DHCP) whose wire is eth0 (192.168.50.2/24, default route) of a `host` namespace.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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

/**
 * The router side in `lan`, wired to eth0 of `host`; dnsmasq's files go to `dir`. `configureHost: false`
 * leaves eth0 down and without an address (for a NetworkManager in `host` to configure).
 */
export function startRouter(
  lan: string,
  host: string,
  dir: string,
  opts: { configureHost?: boolean } = {},
): void {
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
  if (opts.configureHost !== false) {
    sh(["ip", "-n", host, "link", "set", "dev", "eth0", "up"]);
    sh(["ip", "-n", host, "addr", "add", "192.168.50.2/24", "dev", "eth0"]);
    sh(["ip", "-n", host, "route", "add", "default", "via", "192.168.50.1", "dev", "eth0"]);
  }
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

export interface PingResult {
  sent: number;
  received: number;
  /** The longest time between two consecutive replies (ms). */
  maxGapMs: number;
}

/**
 * A 10 ms ping from `ns` to `target` until `stop()`: what got through, and the longest silence. Its output
 * goes to a file: a test blocked in a synchronous call must not stall ping on a full pipe.
 */
export function startPinger(ns: string, target: string): { stop: () => Promise<PingResult> } {
  const dir = mkdtempSync(join(tmpdir(), "qnt-ping-"));
  const file = join(dir, "ping.txt");
  const fd = openSync(file, "w");
  const p = spawn(
    "ip",
    ["netns", "exec", ns, "ping", "-D", "-n", "-i", "0.01", "-W", "1", target],
    {
      stdio: ["ignore", fd, fd],
    },
  );
  closeSync(fd);
  const done = new Promise((r) => p.on("exit", r));
  return {
    async stop() {
      await sleep(200);
      p.kill("SIGINT");
      await done;
      const out = readFileSync(file, "utf8");
      rmSync(dir, { recursive: true, force: true });
      return parsePing(out);
    },
  };
}

/** `ping -D` output: packets sent and received, and the longest time between two replies. */
export function parsePing(out: string): PingResult {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`ping output: ${out}`);
  let last: number | null = null;
  let maxGap = 0;
  for (const line of out.split("\n")) {
    const t = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(line);
    if (!t) continue;
    const now = Number(t[1]);
    if (last !== null) maxGap = Math.max(maxGap, now - last);
    last = now;
  }
  return { sent: Number(m[1]), received: Number(m[2]), maxGapMs: Math.round(maxGap * 1000) };
}
