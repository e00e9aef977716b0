// NetworkManager in a lab's namespace: finding its daemon, running nmcli against that very daemon (inside
// its mount namespace, on its own D-Bus bus), reading its devices, profiles and qnet's conf.d files.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type NmConfigSection, parseNmConfig } from "../facts/nm-config.js";
import type { NmConnection, NmDevice, NmFacts, NmProfileRef } from "../facts/types.js";
import { NM_COPIED, parseNmcliValues, splitNmcliTerse } from "../plan/uplink-nm.js";
import type { Runner, RunOptions, RunResult } from "./runner.js";

/** Where NetworkManager reads per-boot configuration (as it sees its file system). */
export const NM_RUN_CONF_DIR = "/run/NetworkManager/conf.d";

/** A running NetworkManager, and how to reach it. */
export interface NmProcess {
  pid: number;
  /** Its root as this process sees it: `/` when it shares our mount namespace, else /proc/PID/root. */
  root: string;
  /** What runs nmcli against it: nsenter into its namespaces and its D-Bus address, when they differ. */
  prefix: string[];
}

function inode(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

/** The system bus NetworkManager was started on, from its environment (null: the default one). */
function busAddress(procRoot: string, pid: number): string | null {
  try {
    const env = readFileSync(join(procRoot, String(pid), "environ"), "utf8").split("\0");
    const v = env.find((e) => e.startsWith("DBUS_SYSTEM_BUS_ADDRESS="));
    return v ? v.slice("DBUS_SYSTEM_BUS_ADDRESS=".length) : null;
  } catch {
    return null;
  }
}

/**
 * The NetworkManager daemon whose network namespace is `netns` (null: ours), or null. Only that one
 * manages the lab's interfaces; another one (the host's, reached over the default bus) must not be asked.
 */
export function findNetworkManager(netns: string | null, procRoot = "/proc"): NmProcess | null {
  const want = inode(netns ? `/run/netns/${netns}` : join(procRoot, "self", "ns", "net"));
  if (want === null) return null;
  let entries: string[];
  try {
    entries = readdirSync(procRoot).filter((e) => /^\d+$/.test(e));
  } catch {
    return null;
  }
  for (const e of entries) {
    let comm: string;
    try {
      comm = readFileSync(join(procRoot, e, "comm"), "utf8").trim();
    } catch {
      continue;
    }
    if (comm !== "NetworkManager") continue;
    if (inode(join(procRoot, e, "ns", "net")) !== want) continue;
    const pid = Number(e);
    const ownMnt = inode(join(procRoot, "self", "ns", "mnt"));
    const mntDiffers = inode(join(procRoot, e, "ns", "mnt")) !== ownMnt;
    const netDiffers = inode(join(procRoot, "self", "ns", "net")) !== want;
    const bus = busAddress(procRoot, pid);
    const enter =
      mntDiffers || netDiffers
        ? [
            "nsenter",
            `--target=${pid}`,
            ...(mntDiffers ? ["--mount"] : []),
            ...(netDiffers ? ["--net"] : []),
          ]
        : [];
    return {
      pid,
      root: mntDiffers ? join(procRoot, e, "root") : "/",
      prefix: [...enter, ...(bus ? ["env", `DBUS_SYSTEM_BUS_ADDRESS=${bus}`] : [])],
    };
  }
  return null;
}

/** Run nmcli against that NetworkManager. */
export function nmcli(
  runner: Runner,
  nm: NmProcess,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return runner.run([...nm.prefix, "nmcli", ...args], {
    timeoutMs: 120_000,
    ...opts,
    hostNamespace: true,
  });
}

/** A path of NetworkManager's file system, as this process reaches it. */
export const nmPath = (nm: NmProcess, path: string) => join(nm.root, path);

export function parseNmDevices(stdout: string): NmDevice[] {
  const out: NmDevice[] = [];
  for (const line of stdout.split("\n")) {
    if (!line) continue;
    const [device = "", type = "", state = "", uuid = "", id = ""] = splitNmcliTerse(line);
    if (!device) continue;
    out.push({ device, type, state, profile: uuid ? { id, uuid } : null });
  }
  return out;
}

export function parseNmConnections(stdout: string): NmConnection[] {
  const out: NmConnection[] = [];
  for (const line of stdout.split("\n")) {
    if (!line) continue;
    const [id = "", uuid = "", type = "", device = "", filename = ""] = splitNmcliTerse(line);
    if (!uuid) continue;
    out.push({ id, uuid, type, device: device || null, filename });
  }
  return out;
}

/** qnet's files in NetworkManager's per-boot configuration directory. */
export function readQnetConf(nm: NmProcess): Map<string, string> {
  const dir = nmPath(nm, NM_RUN_CONF_DIR);
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir).sort()) {
    if (!/^qnet-[A-Za-z0-9_-]+\.conf$/.test(f)) continue;
    try {
      out.set(f, readFileSync(join(dir, f), "utf8"));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return out;
}

/** NetworkManager's own configuration options (`--config=...`), so --print-config reads what it reads. */
function configArgs(pid: number, procRoot: string): string[] {
  let argv: string[];
  try {
    argv = readFileSync(join(procRoot, String(pid), "cmdline"), "utf8").split("\0");
  } catch {
    return [];
  }
  const out: string[] = [];
  const keys = ["--config", "--config-dir", "--system-config-dir", "--intern-config"];
  for (let k = 1; k < argv.length; k++) {
    const a = argv[k]!;
    if (keys.some((key) => a.startsWith(`${key}=`))) out.push(a);
    else if (keys.includes(a) && argv[k + 1] !== undefined) out.push(`${a}=${argv[++k]}`);
  }
  return out;
}

/** NetworkManager's merged configuration, read in its own mount namespace (null: it could not be read). */
export async function readNmConfig(
  runner: Runner,
  nm: NmProcess,
  procRoot = "/proc",
): Promise<NmConfigSection[] | null> {
  const r = await runner.run(
    [...nm.prefix, "NetworkManager", "--print-config", ...configArgs(nm.pid, procRoot)],
    { allowFail: true, hostNamespace: true, timeoutMs: 15_000 },
  );
  return r.exitCode === 0 ? parseNmConfig(r.stdout) : null;
}

/**
 * Everything qnet reasons over about the NetworkManager of the namespace (no answer: `running` false);
 * `config`: its merged configuration too.
 */
export async function readNmFacts(
  runner: Runner,
  nm: NmProcess,
  opts: { config?: boolean; procRoot?: string } = {},
): Promise<NmFacts> {
  const [gen, dev, con, config] = await Promise.all([
    nmcli(runner, nm, ["-t", "-f", "RUNNING,VERSION", "general"], {
      allowFail: true,
      timeoutMs: 15_000,
    }),
    nmcli(runner, nm, ["-t", "-f", "DEVICE,TYPE,STATE,CON-UUID,CONNECTION", "device"], {
      allowFail: true,
      timeoutMs: 15_000,
    }),
    nmcli(runner, nm, ["-t", "-f", "NAME,UUID,TYPE,DEVICE,FILENAME", "connection", "show"], {
      allowFail: true,
      timeoutMs: 15_000,
    }),
    opts.config ? readNmConfig(runner, nm, opts.procRoot) : Promise.resolve(null),
  ]);
  const [state = "", version = ""] = splitNmcliTerse(gen.stdout.trim());
  const running = gen.exitCode === 0 && state === "running";
  return {
    pid: nm.pid,
    running,
    version: version || null,
    devices: running && dev.exitCode === 0 ? parseNmDevices(dev.stdout) : [],
    connections: running && con.exitCode === 0 ? parseNmConnections(con.stdout) : [],
    qnetConf: readQnetConf(nm),
    config,
  };
}

/** The properties of a profile the bridge profile copies (`nmcli -g`, one value per line). */
export async function readNmSettings(
  runner: Runner,
  nm: NmProcess,
  p: NmProfileRef,
): Promise<Record<string, string>> {
  const r = await nmcli(runner, nm, [
    "-g",
    NM_COPIED.join(","),
    "connection",
    "show",
    "uuid",
    p.uuid,
  ]);
  return parseNmcliValues(r.stdout, NM_COPIED);
}
