// Bridged networks on the host: move the uplink onto a bridge in one `ip -batch`, probe, roll back, confirm; macvtaps.
import { existsSync, rmSync } from "node:fs";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CommandError, UserError } from "../errors.js";
import type { BridgedNetwork } from "../model/lab.js";
import {
  type AddrInfo,
  bridgedNics,
  MACVTAP_LIMITATION,
  moveObstacles,
  type NeighInfo,
  neighCopyLines,
  planMacvtaps,
  planUplinkMove,
  type RouteInfo,
  type UplinkSnapshot,
} from "../plan/uplink-plan.js";
import { type LabContext, ownerMark } from "./context.js";
import { writeFileAtomic } from "./files.js";
import { Journal } from "./journal.js";
import type { Runner } from "./runner.js";
import { registerUndoHandler } from "./undo.js";
import {
  type DetectOptions,
  detectManager,
  dhcpNote,
  networkdRefusal,
  nmConnectionSettings,
  planNmcli,
  refuseWireless,
} from "./uplink-manager.js";

export interface BridgedOptions extends DetectOptions {
  /** Keep the change only if confirmed within this many seconds (`qnet up --confirm N`); else revert. */
  confirmSeconds?: number;
  /** Resolved by the CLI when the user confirms (Enter); the file `confirm` in the state dir also confirms. */
  confirmation?: Promise<unknown>;
  /** How long the gateway (or `probe:`) may take to answer after the move; default 10 000 ms. */
  probeTimeoutMs?: number;
}

/** Payload of the journal's `custom` undo for a moved uplink (handler `uplink-move`). */
export interface UplinkMoveUndo {
  backend: "iproute2";
  netns: string | null;
  uplink: string;
  bridge: string;
  alias: string;
  taps: string[];
  /** The exact inverse batch, computed before the move. */
  inverse: string[];
  /** The uplink as it was before the move. */
  snapshot: UplinkSnapshot;
}

/** Payload of the `custom` undo for an nmcli move (handler `uplink-nmcli`). */
export interface UplinkNmcliUndo {
  backend: "nmcli";
  netns: string | null;
  inverse: string[][];
}

/** Payload of the `custom` undo for macvtaps (handler `uplink-macvtap`). */
export interface MacvtapUndo {
  netns: string | null;
  alias: string;
  names: string[];
}

export const UNDO_MOVE = "uplink-move";
export const UNDO_NMCLI = "uplink-nmcli";
export const UNDO_MACVTAP = "uplink-macvtap";

/** The uplink as `ip -json` shows it now. */
export async function observeUplink(runner: Runner, dev: string): Promise<UplinkSnapshot> {
  const link = await runner.run(["ip", "-json", "link", "show", "dev", dev], { allowFail: true });
  if (link.exitCode !== 0) {
    throw new UserError(
      `uplink ${dev} does not exist${runner.netns ? ` in namespace ${runner.netns}` : ""}`,
      "name the host's LAN interface in `uplink:` (see `ip link`)",
    );
  }
  const l = (JSON.parse(link.stdout) as Record<string, unknown>[])[0]!;
  const addr = JSON.parse(
    (await runner.run(["ip", "-json", "addr", "show", "dev", dev])).stdout,
  ) as {
    addr_info?: AddrInfo[];
  }[];
  const routes: RouteInfo[] = [];
  for (const family of ["inet", "inet6"] as const) {
    const r = await runner.run([
      "ip",
      family === "inet" ? "-4" : "-6",
      "-json",
      "route",
      "show",
      "table",
      "all",
      "dev",
      dev,
    ]);
    for (const route of JSON.parse(r.stdout || "[]") as Omit<RouteInfo, "family">[])
      routes.push({ family, ...route });
  }
  return {
    name: dev,
    ifindex: l.ifindex as number,
    mac: l.address as string,
    mtu: l.mtu as number,
    up: ((l.flags as string[]) ?? []).includes("UP"),
    master: (l.master as string | undefined) ?? null,
    addrs: addr[0]?.addr_info ?? [],
    routes,
  };
}

async function linkAlias(
  runner: Runner,
  dev: string,
): Promise<{ exists: boolean; alias: string | null; master: string | null }> {
  const r = await runner.run(["ip", "-json", "link", "show", "dev", dev], { allowFail: true });
  if (r.exitCode !== 0) return { exists: false, alias: null, master: null };
  const l = (JSON.parse(r.stdout) as Record<string, unknown>[])[0] ?? {};
  return {
    exists: true,
    alias: (l.ifalias as string | undefined) ?? null,
    master: (l.master as string | undefined) ?? null,
  };
}

/** Run lines in one `ip -batch -` process. `force`: go on past errors (the undo is idempotent that way). */
export async function runBatch(runner: Runner, lines: string[], force = false): Promise<void> {
  if (lines.length === 0) return;
  await runner.run(["ip", ...(force ? ["-force"] : []), "-batch", "-"], {
    input: `${lines.join("\n")}\n`,
    allowFail: force,
  });
}

function pingArgv(target: string): string[] {
  const dirs = (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(delimiter);
  const hasPing = dirs.some((d) => d && existsSync(join(d, "ping")));
  const v6 = target.includes(":");
  return [
    ...(hasPing ? ["ping"] : ["busybox", "ping"]),
    ...(v6 ? ["-6"] : []),
    "-c1",
    "-W1",
    target,
  ];
}

/** Ping `target` (once a second-ish) until it answers or `timeoutMs` passes. */
export async function probe(runner: Runner, target: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  do {
    const r = await runner.run(pingArgv(target), { allowFail: true, timeoutMs: 3000 });
    if (r.exitCode === 0) return true;
    await sleep(100);
  } while (Date.now() < deadline);
  return false;
}

/** The address the move is checked against: the network's `probe`, else the uplink's default gateway. */
export function probeTarget(net: BridgedNetwork, snap: UplinkSnapshot): string | null {
  if (net.probe) return net.probe;
  const def = (fam: string) =>
    snap.routes.find(
      (r) =>
        r.family === fam && r.dst === "default" && r.gateway && (!r.table || r.table === "main"),
    );
  return def("inet")?.gateway ?? def("inet6")?.gateway ?? null;
}

/** The snapshot fields that must come back after an undo (lifetimes of dynamic addresses tick, so not those). */
export function comparable(s: UplinkSnapshot): unknown {
  return {
    mac: s.mac,
    mtu: s.mtu,
    up: s.up,
    master: s.master,
    addrs: s.addrs.map(({ valid_life_time, preferred_life_time, tentative, ...a }) => ({
      ...a,
      forever: valid_life_time === 4294967295,
    })),
    routes: s.routes.map(({ flags, ...r }) => r),
  };
}

/** Wait until no address of the uplink is tentative (IPv6 DAD after a restore), at most `ms`. */
async function settle(runner: Runner, dev: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const s = await observeUplink(runner, dev).catch(() => null);
    if (!s?.addrs.some((a) => a.tentative)) return;
    await sleep(100);
  }
}

/** Undo a move (journal handler `uplink-move`): idempotent, does nothing when nothing of the move is left. */
export async function undoUplinkMove(runner: Runner, d: UplinkMoveUndo): Promise<void> {
  const mark = d.alias;
  const br = await linkAlias(runner, d.bridge);
  const up = await linkAlias(runner, d.uplink);
  const taps = await Promise.all(d.taps.map((t) => linkAlias(runner, t)));
  const ours =
    (br.exists && br.alias === mark) ||
    up.master === d.bridge ||
    taps.some((t) => t.exists && t.alias === mark);
  if (!ours) return;
  if (br.exists && br.alias !== mark) {
    throw new UserError(
      `bridge ${d.bridge} exists but does not carry qnet's mark ${mark}; not touching it`,
    );
  }
  const neighs = br.exists
    ? (JSON.parse(
        (await runner.run(["ip", "-json", "neigh", "show", "dev", d.bridge], { allowFail: true }))
          .stdout || "[]",
      ) as NeighInfo[])
    : [];
  await runBatch(runner, [...neighCopyLines(neighs, d.uplink), ...d.inverse], true);
  await settle(runner, d.uplink);
}

/** Undo an nmcli move (handler `uplink-nmcli`): each command tolerates "already gone". */
export async function undoUplinkNmcli(runner: Runner, d: UplinkNmcliUndo): Promise<void> {
  for (const argv of d.inverse) await runner.run(argv, { allowFail: true });
}

/** Undo macvtaps (handler `uplink-macvtap`): deletes each one still carrying qnet's mark. */
export async function undoMacvtaps(runner: Runner, d: MacvtapUndo): Promise<void> {
  for (const name of d.names) {
    const l = await linkAlias(runner, name);
    if (l.exists && l.alias === d.alias)
      await runner.run(["ip", "link", "del", "dev", name], { allowFail: true });
  }
}

/** The handlers of this module's `custom` undo kinds, by name (for src/host/undo.ts). */
export const UPLINK_UNDO_HANDLERS: Record<
  string,
  (runner: Runner, data: unknown) => Promise<void>
> = {
  [UNDO_MOVE]: (r, d) => undoUplinkMove(r, d as UplinkMoveUndo),
  [UNDO_NMCLI]: (r, d) => undoUplinkNmcli(r, d as UplinkNmcliUndo),
  [UNDO_MACVTAP]: (r, d) => undoMacvtaps(r, d as MacvtapUndo),
};

for (const [name, fn] of Object.entries(UPLINK_UNDO_HANDLERS)) {
  registerUndoHandler(name, (data, env) => fn(env.runner, data));
}

/** Replay this module's journal entries in reverse (what `down` does for bridged networks). */
export async function undoBridged(ctx: LabContext): Promise<number> {
  let n = 0;
  for (const e of Journal.read(ctx.stateDir).reverse()) {
    if (e.undo.kind !== "custom") continue;
    const h = UPLINK_UNDO_HANDLERS[e.undo.handler];
    if (!h) continue;
    await h(ctx.runner, e.undo.data);
    n++;
  }
  return n;
}

/** The confirmation file `qnet confirm LAB` writes into the lab's state directory. */
export function confirmPath(stateDir: string): string {
  return join(stateDir, "confirm");
}

/** Confirm a pending change (what `qnet confirm LAB` does). */
export function confirmLab(stateDir: string): void {
  writeFileAtomic(confirmPath(stateDir), `${new Date().toISOString()}\n`);
}

/** Wait up to `seconds` for a confirmation (the file, or `extra` resolving). True when confirmed. */
export async function waitForConfirmation(
  stateDir: string,
  seconds: number,
  extra?: Promise<unknown>,
): Promise<boolean> {
  let confirmed = false;
  extra?.then(
    () => {
      confirmed = true;
    },
    () => {},
  );
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (confirmed || existsSync(confirmPath(stateDir))) break;
    await sleep(100);
  }
  confirmed ||= existsSync(confirmPath(stateDir));
  rmSync(confirmPath(stateDir), { force: true });
  return confirmed;
}

interface Reverter {
  what: string;
  revert: () => Promise<void>;
}

/** Move one uplink onto its bridge with plain iproute2, probe, roll back on silence. */
async function moveWithIproute2(
  ctx: LabContext,
  net: BridgedNetwork,
  snap: UplinkSnapshot,
  opts: BridgedOptions,
): Promise<Reverter> {
  const { runner } = ctx;
  const alias = ownerMark(ctx.lab.name);
  const taps = bridgedNics(ctx.lab, net).map((n) => ({ name: n.name, user: n.user }));
  const plan = planUplinkMove(snap, { bridge: net.bridge, alias, taps });
  const data: UplinkMoveUndo = {
    backend: "iproute2",
    netns: runner.netns,
    uplink: snap.name,
    bridge: net.bridge,
    alias,
    taps: taps.map((t) => t.name),
    inverse: plan.inverse,
    snapshot: snap,
  };
  ctx.journal.record({
    what: `move ${snap.name} (${plan.moved.addrs.join(", ") || "no addresses"}) onto bridge ${net.bridge}`,
    undo: { kind: "custom", handler: UNDO_MOVE, data },
  });
  const revert = async () => {
    await undoUplinkMove(runner, data);
    const now = await observeUplink(runner, snap.name);
    if (JSON.stringify(comparable(now)) !== JSON.stringify(comparable(snap))) {
      throw new UserError(
        `network ${net.name}: rolled back the move of ${snap.name}, but its state differs from before`,
        `compare \`ip addr show dev ${snap.name}\` and \`ip route show dev ${snap.name}\` with the journal in ${ctx.stateDir}`,
      );
    }
  };
  ctx.progress(
    `moving ${snap.name} onto bridge ${net.bridge} (${plan.apply.length} changes in one batch)`,
  );
  try {
    await runBatch(runner, plan.apply);
  } catch (e) {
    await revert();
    const why = e instanceof CommandError ? e.stderr.trim() : String(e);
    throw new UserError(
      `network ${net.name}: moving ${snap.name} onto ${net.bridge} failed (${why}); the previous state was restored`,
      undefined,
      undefined,
      { cause: e },
    );
  }
  const target = probeTarget(net, snap);
  if (target) {
    const timeoutMs = opts.probeTimeoutMs ?? 10_000;
    if (!(await probe(runner, target, timeoutMs))) {
      ctx.progress(`${target} did not answer after the move: rolling back`);
      await revert();
      throw new UserError(
        `network ${net.name}: after moving ${snap.name} onto bridge ${net.bridge}, ${target} did not answer ` +
          `a ping within ${timeoutMs / 1000} s; the move was rolled back and ${snap.name} has its addresses and routes again`,
        `check that ${target} answers ping from this host before the move; set \`probe:\` to an address ` +
          "on the LAN that answers ping",
      );
    }
  }
  return { what: `${snap.name} on ${net.bridge}`, revert };
}

/** Move one uplink with NetworkManager (so NM does not undo the change). Untested here: no NM in the sandbox. */
async function moveWithNmcli(
  ctx: LabContext,
  net: BridgedNetwork,
  snap: UplinkSnapshot,
  connection: string | null,
  opts: BridgedOptions,
): Promise<Reverter> {
  const { runner } = ctx;
  const settings = connection ? await nmConnectionSettings(runner, connection) : null;
  const plan = planNmcli({
    lab: ctx.lab.name,
    uplink: snap.name,
    bridge: net.bridge,
    mac: snap.mac,
    settings,
  });
  const data: UplinkNmcliUndo = { backend: "nmcli", netns: runner.netns, inverse: plan.inverse };
  ctx.journal.record({
    what: `move ${snap.name} onto bridge ${net.bridge} with NetworkManager`,
    undo: { kind: "custom", handler: UNDO_NMCLI, data },
  });
  const revert = () => undoUplinkNmcli(runner, data);
  try {
    for (const argv of plan.apply) await runner.run(argv);
  } catch (e) {
    await revert();
    throw new UserError(
      `network ${net.name}: NetworkManager refused the bridge (${String(e)}); reverted`,
      undefined,
      undefined,
      { cause: e },
    );
  }
  const target = probeTarget(net, snap);
  const timeoutMs = opts.probeTimeoutMs ?? 30_000;
  if (target && !(await probe(runner, target, timeoutMs))) {
    await revert();
    throw new UserError(
      `network ${net.name}: after NetworkManager moved ${snap.name} onto ${net.bridge}, ${target} did not answer within ${timeoutMs / 1000} s; reverted`,
    );
  }
  return { what: `${snap.name} on ${net.bridge} (NetworkManager)`, revert };
}

async function applyMacvtaps(
  ctx: LabContext,
  net: BridgedNetwork,
): Promise<{ changed: boolean; revert: Reverter }> {
  const { runner } = ctx;
  const alias = ownerMark(ctx.lab.name);
  const nics = bridgedNics(ctx.lab, net);
  const todo = [];
  for (const n of nics) {
    const l = await linkAlias(runner, n.name);
    if (l.exists && l.alias !== alias)
      throw new UserError(
        `interface ${n.name} exists and is not qnet's (${ownerMark(ctx.lab.name)})`,
      );
    if (!l.exists) todo.push(n);
  }
  await observeUplink(runner, net.uplink);
  const plan = planMacvtaps(net.uplink, alias, todo);
  const data: MacvtapUndo = { netns: runner.netns, alias, names: todo.map((n) => n.name) };
  const revert = { what: `macvtaps on ${net.uplink}`, revert: () => undoMacvtaps(runner, data) };
  if (todo.length === 0) return { changed: false, revert };
  ctx.journal.record({
    what: `create macvtaps ${data.names.join(", ")} on ${net.uplink}`,
    undo: { kind: "custom", handler: UNDO_MACVTAP, data },
  });
  try {
    await runBatch(runner, plan.apply);
  } catch (e) {
    await revert.revert();
    throw e;
  }
  return { changed: true, revert };
}

/** The character device QEMU opens for a macvtap (`/dev/tap<ifindex>`), created if udev did not. */
export async function macvtapDevicePath(runner: Runner, name: string): Promise<string> {
  const r = await runner.run(["ip", "-json", "link", "show", "dev", name]);
  const ifindex = (JSON.parse(r.stdout) as { ifindex: number }[])[0]!.ifindex;
  const path = `/dev/tap${ifindex}`;
  if (!existsSync(path)) {
    const dev = (
      await runner.run(["cat", `/sys/class/net/${name}/macvtap/tap${ifindex}/dev`])
    ).stdout.trim();
    const [major, minor] = dev.split(":");
    await runner.run(["mknod", "-m", "0600", path, "c", major!, minor!], { hostNamespace: true });
  }
  return path;
}

/** Macvtap device paths of one VM, in NIC order (QEMU gets NIC i's as fd 3+i). Null for non-macvtap NICs. */
export async function macvtapPathsOf(ctx: LabContext, vmName: string): Promise<(string | null)[]> {
  const vm = ctx.lab.vms.find((v) => v.name === vmName);
  if (!vm) return [];
  const nets = new Map(ctx.lab.networks.map((n) => [n.name, n]));
  const out: (string | null)[] = [];
  for (const nic of vm.nics) {
    const net = nets.get(nic.network);
    out.push(
      net?.type === "bridged" && net.mode === "macvtap"
        ? await macvtapDevicePath(ctx.runner, nic.tap!)
        : null,
    );
  }
  return out;
}

/**
 * Bring up every `type: bridged` network of the lab: refuse Wi-Fi, detect who manages the uplink, move it
 * (journaled before), probe the gateway and roll back on silence; with `confirmSeconds`, revert unless confirmed.
 */
export async function applyBridgedNetworks(
  ctx: LabContext,
  opts: BridgedOptions = {},
): Promise<{ changed: boolean; notes: string[] }> {
  const { runner } = ctx;
  const notes: string[] = [];
  const done: Reverter[] = [];
  let changed = false;
  rmSync(confirmPath(ctx.stateDir), { force: true });
  const alias = ownerMark(ctx.lab.name);
  try {
    for (const net of ctx.lab.networks) {
      if (net.type !== "bridged") continue;
      if (net.mode === "macvtap") {
        await refuseWireless(runner, net.name, net.uplink, opts).catch(() => {});
        const r = await applyMacvtaps(ctx, net);
        changed ||= r.changed;
        if (r.changed) done.push(r.revert);
        notes.push(`network ${net.name}: ${MACVTAP_LIMITATION}`);
        continue;
      }
      await refuseWireless(runner, net.name, net.uplink, opts);
      const snap = await observeUplink(runner, net.uplink);
      const br = await linkAlias(runner, net.bridge);
      if (snap.master === net.bridge && br.alias === alias) {
        notes.push(`network ${net.name}: ${net.uplink} is already on bridge ${net.bridge}`);
        continue;
      }
      if (br.exists) {
        throw new UserError(
          `network ${net.name}: interface ${net.bridge} already exists${br.alias === alias ? "" : " and is not qnet's"}`,
          "pick another `bridge:` name, or delete the interface",
        );
      }
      const obstacles = moveObstacles(snap, net.bridge);
      if (obstacles.length > 0) throw new UserError(`network ${net.name}: ${obstacles.join("; ")}`);
      const manager = await detectManager(runner, snap, net.backend, opts);
      if (manager.kind === "networkd")
        throw networkdRefusal(net.name, snap.name, net.bridge, manager.networkFile);
      if (manager.kind === "dhcp")
        notes.push(`network ${net.name}: ${dhcpNote(snap.name, net.bridge, manager)}`);
      const r =
        manager.kind === "nmcli"
          ? await moveWithNmcli(ctx, net, snap, manager.connection, opts)
          : await moveWithIproute2(ctx, net, snap, opts);
      done.push(r);
      changed = true;
      notes.push(`network ${net.name}: ${r.what}`);
    }
  } catch (e) {
    // Earlier networks of this run go back too: up is all or nothing for the LAN moves.
    for (const r of done.reverse()) await r.revert().catch(() => {});
    throw e;
  }
  if (opts.confirmSeconds !== undefined && done.length > 0) {
    ctx.progress(
      `keeping the change for ${opts.confirmSeconds} s: press Enter or run \`qnet confirm ${ctx.lab.name}\` to keep it`,
    );
    if (!(await waitForConfirmation(ctx.stateDir, opts.confirmSeconds, opts.confirmation))) {
      for (const r of done.reverse()) await r.revert();
      throw new UserError(
        `not confirmed within ${opts.confirmSeconds} s: reverted ${done.map((d) => d.what).join(", ")}`,
        `run \`qnet up\` again and confirm (Enter, or \`qnet confirm ${ctx.lab.name}\`) once you have checked the host is reachable`,
      );
    }
    notes.push("change confirmed");
  }
  return { changed, notes };
}
