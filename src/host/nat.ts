// NAT and port forwards on the host: the sysctls they need (journaled) and the lab's nftables table.
import { existsSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { collides, describeProcs, type Listener, parseSs } from "../doctor/ss-parse.js";
import { UserError } from "../errors.js";
import {
  bridgeNetworks,
  type NatFacts,
  natNeeds,
  nftTable,
  renderNftRuleset,
} from "../render/nftables.js";
import type { LabContext } from "./context.js";
import { writeFileAtomic } from "./files.js";
import type { Runner } from "./runner.js";

export interface PhaseResult {
  changed: boolean;
  notes: string[];
}

/** The interface of the default route in the runner's namespace, or null. */
export async function defaultUplink(runner: Runner): Promise<string | null> {
  const r = await runner.run(["ip", "-j", "-4", "route", "show", "default"], { allowFail: true });
  if (r.exitCode !== 0) return null;
  try {
    const routes = JSON.parse(r.stdout || "[]") as { dev?: string }[];
    return routes.find((x) => typeof x.dev === "string")?.dev ?? null;
  } catch {
    return null;
  }
}

export async function natFacts(runner: Runner): Promise<NatFacts> {
  return { defaultUplink: await defaultUplink(runner) };
}

/**
 * A sysctl key for `sysctl`: dotted, or slash-separated when an interface name in it has a dot
 * (procps reads `net/ipv4/conf/eth0.100/x` literally).
 */
export function ifSysctlKey(ifname: string, leaf: string): string {
  return ifname.includes(".")
    ? `net/ipv4/conf/${ifname}/${leaf}`
    : `net.ipv4.conf.${ifname}.${leaf}`;
}

export async function readSysctl(runner: Runner, key: string): Promise<string> {
  return (await runner.run(["sysctl", "-n", key])).stdout.trim();
}

/** Set a sysctl (in the lab's namespace) to `value`, journaling the old value first. True if changed. */
export async function ensureSysctl(ctx: LabContext, key: string, value: string): Promise<boolean> {
  const before = await readSysctl(ctx.runner, key);
  if (before === value) return false;
  ctx.journal.record({
    what: `set ${key}=${value} (was ${before})`,
    undo: { kind: "sysctl", key, value: before },
  });
  await ctx.runner.run(["sysctl", "-q", "-w", `${key}=${value}`]);
  return true;
}

/** ip_forward and route_localnet as the lab's NAT and forwards need them. */
export async function applySysctls(ctx: LabContext): Promise<PhaseResult> {
  const needs = natNeeds(ctx.lab);
  const notes: string[] = [];
  let changed = false;
  if (needs.ipForward && (await ensureSysctl(ctx, "net.ipv4.ip_forward", "1"))) {
    changed = true;
    notes.push("turned on IPv4 forwarding (net.ipv4.ip_forward=1); down restores the old value");
  }
  for (const br of needs.routeLocalnet) {
    // DNAT of the host's own 127.0.0.1 connections to a VM: the kernel refuses to route a loopback
    // source out of a non-loopback device unless route_localnet is on for it (only this bridge).
    if (await ensureSysctl(ctx, ifSysctlKey(br, "route_localnet"), "1")) {
      changed = true;
      notes.push(`route_localnet=1 on ${br} (forwards bound to 127.0.0.1)`);
    }
  }
  if (
    ctx.runner.netns &&
    bridgeNfSysctlsPerNetns() &&
    ctx.lab.networks.some((n) => n.type !== "user")
  ) {
    // With br_netfilter loaded, bridged frames go through iptables when the namespace's
    // bridge-nf-call-* is 1, and a bridge's own nf_call_* = 0 cannot turn that off (the kernel ORs
    // them). Inside the lab's own namespace (per-namespace since Linux 5.3) qnet turns them off, so a
    // FORWARD drop there cannot eat VM-to-VM frames; on the host's namespace it leaves them alone.
    for (const leaf of ["iptables", "ip6tables", "arptables"]) {
      const key = `net.bridge.bridge-nf-call-${leaf}`;
      const r = await ctx.runner.run(["sysctl", "-n", key], { allowFail: true });
      if (r.exitCode !== 0) continue; // br_netfilter not loaded: nothing filters bridged frames
      if (await ensureSysctl(ctx, key, "0")) {
        changed = true;
        notes.push(`${key}=0 in namespace ${ctx.runner.netns} (bridged frames skip iptables)`);
      }
    }
  }
  return { changed, notes };
}

/** br_netfilter's sysctls belong to each network namespace from Linux 5.3 on. */
export function bridgeNfSysctlsPerNetns(kernel = release()): boolean {
  const [major = 0, minor = 0] = kernel.split(/[.-]/).map(Number);
  return major > 5 || (major === 5 && minor >= 3);
}

/**
 * Refuse forwards whose host port a process in the namespace already listens on: the DNAT rule would
 * silently shadow that service (connections to it would reach the VM instead).
 */
export async function checkForwardPorts(ctx: LabContext): Promise<void> {
  const forwards = bridgeNetworks(ctx.lab).flatMap((n) => n.forwards.map((f) => ({ n, f })));
  if (forwards.length === 0) return;
  const listeners: Listener[] = [];
  for (const proto of ["tcp", "udp"] as const) {
    const r = await ctx.runner.run(["ss", "-H", proto === "tcp" ? "-tlnp" : "-ulnp"], {
      allowFail: true,
    });
    if (r.exitCode === 0) listeners.push(...parseSs(r.stdout, proto));
  }
  const hits = forwards.flatMap(({ n, f }) =>
    listeners
      .filter((l) => collides(l, f.proto, f.hostAddr, f.hostPort))
      .map(
        (l) =>
          `${f.spec} on ${n.name}: ${f.proto} port ${f.hostPort} is held by ${describeProcs(l)}`,
      ),
  );
  if (hits.length > 0) {
    throw new UserError(
      `forward host port already in use${ctx.runner.netns ? ` in namespace ${ctx.runner.netns}` : ""}: ${hits.join("; ")}`,
      "stop that listener or pick another host port for the forward (its DNAT rule would shadow the listener)",
    );
  }
}

/** Replace the lab's nftables table atomically; delete it when the lab needs none. */
export async function applyNftTable(ctx: LabContext, facts?: NatFacts): Promise<PhaseResult> {
  const { family, table } = nftTable(ctx.lab.name);
  const text = renderNftRuleset(ctx.lab, facts ?? (await natFacts(ctx.runner)));
  const rulesFile = join(ctx.stateDir, "nftables.nft");
  const listingFile = join(ctx.stateDir, "nftables.listing");
  const current = await ctx.runner.run(["nft", "list", "table", family, table], {
    allowFail: true,
  });
  const exists = current.exitCode === 0;

  if (text === null) {
    if (!exists) return { changed: false, notes: [] };
    await ctx.runner.run(["nft", "delete", "table", family, table]);
    return {
      changed: true,
      notes: [`deleted nftables table ${family} ${table} (no NAT or forwards left)`],
    };
  }
  const same =
    exists &&
    existsSync(rulesFile) &&
    readFileSync(rulesFile, "utf8") === text &&
    existsSync(listingFile) &&
    readFileSync(listingFile, "utf8") === current.stdout;
  if (same) return { changed: false, notes: [] };

  await checkForwardPorts(ctx);
  ctx.journal.record({
    what: `nftables table ${family} ${table}`,
    undo: { kind: "nft-table", family, table },
  });
  await ctx.runner.run(["nft", "-f", "-"], { input: text });
  const after = await ctx.runner.run(["nft", "list", "table", family, table]);
  writeFileAtomic(rulesFile, text);
  writeFileAtomic(listingFile, after.stdout);
  return {
    changed: true,
    notes: [`nftables table ${family} ${table} ${exists ? "replaced" : "created"}`],
  };
}
