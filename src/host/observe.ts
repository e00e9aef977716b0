// One observation of a host (one namespace): links, sysctls, firewall, processes, files, uplinks, read in
// parallel and only as far as the lab needs; what plan, up, status, doctor and check all reason over.
import { existsSync, readFileSync } from "node:fs";
import { parseFdbJson } from "../facts/fdb-json.js";
import { parseIptablesSave, parseNftRuleset } from "../facts/firewall.js";
import {
  parseAddrInfo,
  parseDefaultRouteDev,
  parseIpJson,
  parseJsonArray,
  parseRoutes,
} from "../facts/ip-json.js";
import { parseSs } from "../facts/ss.js";
import {
  emptyObservation,
  type IptablesFacts,
  type Observation,
  type ObserveRequest,
  processKey,
  type UplinkFacts,
  type UplinkSnapshot,
} from "../facts/types.js";
import { netnsExists } from "./netns.js";
import { findNetworkManager, readNmFacts } from "./network-manager.js";
import { livePid } from "./pidfile.js";
import { qmpQueryStatus } from "./qmp.js";
import type { Runner } from "./runner.js";
import { kernelFeatures, readTc } from "./tc-observe.js";
import { type DetectOptions, detectManager, isWireless, type NmContext } from "./uplink-manager.js";

export interface ObserveOptions extends DetectOptions {
  /** Where /sys/module is read (tests); default /sys. */
  sysRoot?: string;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** Where sysfs shows a feature that is built in (a built-in module without parameters has no /sys/module entry). */
const FEATURE_CLASSES: Record<string, string> = { tun: "class/misc/tun", macvtap: "class/macvtap" };

/** Kernel features present: a loaded module, or a built-in one by the device class it registers. */
function featurePresent(name: string, sys: string): boolean {
  if (existsSync(`${sys}/module/${name}`)) return true;
  const cls = FEATURE_CLASSES[name];
  return cls !== undefined && existsSync(`${sys}/${cls}`);
}

/**
 * /proc/sys values of the runner's namespace. In qnet's own namespace they are files; in another one a
 * single `grep -H` inside it reads them all (net sysctls show the namespace of the reader).
 */
async function readSysctls(runner: Runner, keys: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (keys.length === 0) return out;
  if (!runner.netns) {
    for (const k of keys) {
      const v = readOrNull(`/proc/sys/${k}`);
      if (v !== null) out.set(k, v.trim());
    }
    return out;
  }
  const paths = keys.map((k) => `/proc/sys/${k}`);
  const r = await runner.run(
    ["nsenter", `--net=/run/netns/${runner.netns}`, "--", "grep", "-H", "", ...paths],
    { allowFail: true, hostNamespace: true },
  );
  const byPath = new Map(paths.map((p, i) => [p, keys[i]!]));
  for (const line of r.stdout.split("\n")) {
    for (const [p, k] of byPath) {
      if (line.startsWith(`${p}:`)) out.set(k, line.slice(p.length + 1).trim());
    }
  }
  return out;
}

/**
 * The values a namespace that does not exist yet will start with: br_netfilter's switches at their
 * default 1 where the kernel has them; IPv4's namespace-wide settings copied from the initial namespace,
 * as the kernel does unless net.core.devconf_inherit_init_net asks for the built-in defaults (2, 3).
 */
function freshNamespaceSysctls(keys: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const inherit = !["2", "3"].includes(
    readOrNull("/proc/sys/net/core/devconf_inherit_init_net")?.trim() ?? "0",
  );
  for (const k of keys) {
    const host = readOrNull(`/proc/sys/${k}`)?.trim();
    if (host === undefined) continue;
    if (k.startsWith("net/bridge/")) out.set(k, "1");
    else if (k === "net/ipv4/ip_forward" || k.startsWith("net/ipv4/conf/default/"))
      out.set(k, inherit ? host : "0");
  }
  return out;
}

async function readIptables(runner: Runner): Promise<IptablesFacts[]> {
  const variants = [
    { variant: "legacy", save: "iptables-legacy-save" },
    { variant: "nft", save: "iptables-nft-save" },
  ] as const;
  const got = await Promise.all(
    variants.map(async (v) => {
      // *-save only reads: it neither loads modules nor creates tables (listing with -S would).
      const r = await runner.run([v.save], { allowFail: true });
      return r.exitCode === 0 ? parseIptablesSave(r.stdout, v.variant) : null;
    }),
  );
  return got.filter((f): f is IptablesFacts => f !== null);
}

/** The uplink as `ip -json` shows it now, or null when it does not exist. */
export async function observeUplink(runner: Runner, dev: string): Promise<UplinkSnapshot | null> {
  const link = await runner.run(["ip", "-json", "link", "show", "dev", dev], { allowFail: true });
  if (link.exitCode !== 0) return null;
  const l = parseJsonArray(link.stdout, "ip -json link show")[0];
  if (!l) return null;
  const [addr, r4, r6] = await Promise.all([
    runner.run(["ip", "-json", "addr", "show", "dev", dev]),
    runner.run(["ip", "-4", "-json", "route", "show", "table", "all", "dev", dev]),
    runner.run(["ip", "-6", "-json", "route", "show", "table", "all", "dev", dev]),
  ]);
  return {
    name: dev,
    ifindex: l.ifindex as number,
    mac: l.address as string,
    mtu: l.mtu as number,
    up: ((l.flags as string[]) ?? []).includes("UP"),
    master: (l.master as string | undefined) ?? null,
    addrs: parseAddrInfo(addr.stdout),
    routes: [...parseRoutes(r4.stdout, "inet"), ...parseRoutes(r6.stdout, "inet6")],
  };
}

async function readUplink(
  runner: Runner,
  dev: string,
  opts: ObserveOptions,
  backend: "nmcli" | "iproute2" | null,
  nm: NmContext | null,
): Promise<UplinkFacts> {
  const snapshot = await observeUplink(runner, dev);
  if (!snapshot) return { snapshot, wireless: false, manager: { kind: "none" } };
  const [wireless, manager] = await Promise.all([
    isWireless(runner, dev, opts),
    detectManager(runner, snapshot, backend, opts, nm),
  ]);
  return { snapshot, wireless, manager };
}

/**
 * Observe what `req` asks for in the runner's namespace. A namespace that does not exist is observed
 * as empty (everything in it would be created). `backends` names the forced backend of each uplink.
 */
export async function observe(
  runner: Runner,
  req: ObserveRequest,
  opts: ObserveOptions & { backends?: Map<string, "nmcli" | "iproute2" | null> } = {},
): Promise<Observation> {
  const sys = opts.sysRoot ?? "/sys";
  const exists = runner.netns === null || netnsExists(runner.netns);
  const obs = emptyObservation(runner.netns, exists);
  // Host-wide facts: modules, files, processes (pidfiles are ours; /proc is the host's).
  for (const m of req.modules) if (featurePresent(m, sys)) obs.modules.add(m);
  for (const f of req.files) obs.files.set(f, readOrNull(f));
  for (const p of req.exists) if (existsSync(p)) obs.existing.add(p);
  for (const p of req.processes) obs.processes.set(processKey(p), livePid(p.pidfile, p.match));
  obs.kernelFeatures = kernelFeatures(req.kernelFeatures ?? [], sys);
  const qmp = Promise.all(
    req.qmp.map(async (q) => {
      if (obs.processes.get(processKey(q.key)) == null) return;
      try {
        obs.vmStates.set(q.vm, (await qmpQueryStatus(q.socket, 1_500)).status);
      } catch {
        // A QEMU that does not answer QMP is reported by its process alone.
      }
    }),
  );
  if (!exists) {
    obs.sysctls = freshNamespaceSysctls(req.sysctls);
    await qmp;
    return obs;
  }
  const ip = (args: string[]) => runner.run(["ip", ...args]).then((r) => r.stdout);
  // NetworkManager first: the uplinks' managers are read from it.
  const nmProc =
    req.networkManager || req.uplinks.length > 0
      ? findNetworkManager(runner.netns, opts.procRoot)
      : null;
  const nm: NmContext | null = nmProc
    ? {
        proc: nmProc,
        facts: await readNmFacts(runner, nmProc, {
          config: req.uplinks.length > 0,
          ...(opts.procRoot ? { procRoot: opts.procRoot } : {}),
        }),
      }
    : null;
  obs.nm = nm?.facts ?? null;
  const links =
    req.links &&
    Promise.all([ip(["-json", "-details", "link", "show"]), ip(["-json", "addr", "show"])]).then(
      ([l, a]) => {
        obs.links = parseIpJson(l, a);
      },
    );
  await Promise.all([
    qmp,
    links,
    (req.qdiscs || (req.ingressFilters?.length ?? 0) > 0) &&
      Promise.resolve(links).then(() => readTc(runner, req, obs)),
    req.defaultRoute &&
      runner.run(["ip", "-j", "-4", "route", "show", "default"], { allowFail: true }).then((r) => {
        obs.defaultRouteDev = r.exitCode === 0 ? parseDefaultRouteDev(r.stdout) : null;
      }),
    readSysctls(runner, req.sysctls).then((m) => {
      obs.sysctls = m;
    }),
    req.nft &&
      runner.run(["nft", "-j", "list", "ruleset"], { allowFail: true }).then((r) => {
        if (r.exitCode !== 0) return;
        try {
          obs.nft = parseNftRuleset(r.stdout);
        } catch {
          // Not nft's JSON (a very old nft): as if it could not be read.
        }
      }),
    req.iptables &&
      readIptables(runner).then((f) => {
        obs.iptables = f;
      }),
    req.listeners &&
      Promise.all(
        (["tcp", "udp"] as const).map(async (proto) => {
          const r = await runner.run(["ss", "-H", proto === "tcp" ? "-tlnp" : "-ulnp"], {
            allowFail: true,
          });
          return r.exitCode === 0 ? parseSs(r.stdout, proto) : null;
        }),
      ).then(([t, u]) => {
        obs.listeners = t && u ? [...t, ...u] : null;
      }),
    req.fdb &&
      runner.run(["bridge", "-json", "fdb", "show"]).then((r) => {
        obs.fdb = parseFdbJson(r.stdout);
      }),
    ...req.uplinks.map(async (dev) => {
      obs.uplinks.set(
        dev,
        await readUplink(runner, dev, opts, opts.backends?.get(dev) ?? null, nm),
      );
    }),
  ]);
  return obs;
}
