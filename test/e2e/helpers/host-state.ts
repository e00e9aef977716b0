// Reliability helpers: full namespace snapshots (links, addresses, routes, nft, ip_forward), qnet runs with env, leftovers.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CLI } from "../../helpers/topology.js";
import { sh } from "./netns.js";

export interface HostSnapshot {
  link: unknown;
  addr: unknown;
  route: unknown;
  nft: string;
  ipForward: string;
  /** /etc/netns/NS/hosts (ip netns exec bind-mounts it over /etc/hosts), or null. */
  etcHosts: string | null;
}

/** Everything a lab may change in a namespace (null: the machine's own namespace). */
export function hostSnapshot(ns: string | null): HostSnapshot {
  const inNs = (argv: string[]) => (ns ? ["ip", "netns", "exec", ns, ...argv] : argv);
  const j = (args: string[]) => JSON.parse(sh(inNs(["ip", "-json", ...args])) || "[]");
  return {
    link: j(["link", "show"]),
    addr: j(["addr", "show"]),
    route: j(["route", "show", "table", "all"]),
    nft: sh(inNs(["nft", "list", "ruleset"])),
    ipForward: sh(inNs(["sysctl", "-n", "net.ipv4.ip_forward"])).trim(),
    etcHosts: readOrNull(ns ? `/etc/netns/${ns}/hosts` : "/etc/hosts"),
  };
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

export interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI with a state root and extra environment (e.g. QNET_KILL_AFTER). */
export function qnetWith(
  stateRoot: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 180_000,
): Run {
  const r = spawnSync(
    process.execPath,
    [CLI, args[0]!, "--state-dir", stateRoot, ...args.slice(1)],
    {
      encoding: "utf8",
      timeout: timeoutMs,
      env: { ...process.env, ...env },
    },
  );
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** PIDs whose command line contains `needle` (pgrep -f, fixed string). */
export function pidsMatching(needle: string): number[] {
  const r = spawnSync("pgrep", ["-f", "--", needle.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")], {
    encoding: "utf8",
  });
  return r.stdout
    .split("\n")
    .filter(Boolean)
    .map(Number)
    .filter((p) => p !== process.pid);
}

/** The QEMU of one VM of a lab under `stateRoot`: its exact `process=` tag and its pidfile there. */
export function vmPid(stateRoot: string, lab: string, vm: string): number | null {
  const tag = `process=qnet:${lab}:${vm}`;
  const pidfile = join(stateRoot, lab, "vm", `${vm}.pid`);
  for (const pid of pidsMatching(pidfile)) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (argv.includes(pidfile) && argv.some((a) => a.split(",").includes(tag))) return pid;
    } catch {}
  }
  return null;
}

export function readPid(path: string): number | null {
  try {
    const n = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(n) && n > 1 ? n : null;
  } catch {
    return null;
  }
}

export interface StatusObject {
  kind: string;
  name: string;
  state: string;
  detail: string;
}

export function statusOf(stateRoot: string, lab: string): { ok: boolean; objects: StatusObject[] } {
  const r = qnetWith(stateRoot, ["status", lab, "--json"]);
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`status ${lab} printed no JSON (exit ${r.status}): ${r.stderr}`);
  }
}

/** "kind name" → state, for compact assertions. */
export function states(s: { objects: StatusObject[] }): Record<string, string> {
  return Object.fromEntries(s.objects.map((o) => [`${o.kind} ${o.name}`, o.state]));
}

/** What a lab may leave behind: its state files, its lock, its processes. Empty when clean. */
export function leftovers(stateRoot: string, lab: string): string[] {
  const out: string[] = [];
  if (existsSync(stateRoot))
    for (const f of readdirSync(stateRoot))
      if (f === lab || f.startsWith(`${lab}.`)) out.push(`file ${join(stateRoot, f)}`);
  // Processes by their files under this state root (QEMU's -pidfile, dnsmasq's --conf-file): other
  // tests on the machine may run labs with the same names, and qnet-a- also prefixes qnet-a-b-.
  for (const pid of pidsMatching(`${join(stateRoot, lab)}/`)) out.push(`process pid ${pid}`);
  return out;
}

export const sleepMs = (ms: number) =>
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
