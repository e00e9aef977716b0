// LAN uplinks on the host: move one onto its bridge (one `ip -batch`, or NetworkManager), probe the LAN,
// roll back from the journal's own undo record when it stays silent, wait for `qnet confirm`.
import { existsSync, rmSync } from "node:fs";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CommandError, UserError } from "../errors.js";
import type { Action } from "../kinds/types.js";
import type { UplinkPayload } from "../kinds/uplink.js";
import type { Undo } from "../model/undo.js";
import { comparable, type NeighInfo, neighCopyLines } from "../plan/uplink-plan.js";
import { writeFileAtomic } from "./files.js";
import { observeUplink } from "./observe.js";
import type { Runner } from "./runner.js";
import { moveNm, undoUplinkNm } from "./uplink-nm.js";

export interface UplinkOptions {
  /** Keep the change only if confirmed within this many seconds (`qnet up --confirm N`); else revert. */
  confirmSeconds?: number;
  /** Resolved by the CLI when the user confirms (Enter); the file `confirm` in the state dir also confirms. */
  confirmation?: Promise<unknown>;
  /** How long the gateway (or `probe:`) may take to answer after the move (default 10 s; nmcli 30 s). */
  probeTimeoutMs?: number;
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

/** Wait until no address of the uplink is tentative (IPv6 DAD after a restore), at most `ms`. */
async function settle(runner: Runner, dev: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const s = await observeUplink(runner, dev).catch(() => null);
    if (!s?.addrs.some((a) => a.tentative)) return;
    await sleep(100);
  }
}

/** Undo a move: idempotent, does nothing when nothing of the move is left. */
export async function undoUplinkMove(
  runner: Runner,
  d: Extract<Undo, { kind: "uplink-move" }>,
): Promise<void> {
  const mark = d.alias;
  const br = await linkAlias(runner, d.bridge);
  const up = await linkAlias(runner, d.uplink);
  const ours = (br.exists && br.alias === mark) || up.master === d.bridge;
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

/** Take one move back from its undo record (the same one `down` uses), and check the uplink is as it was. */
async function revert(runner: Runner, a: Action<UplinkPayload>): Promise<void> {
  const u = a.undo!;
  if (u.kind === "uplink-nm") return undoUplinkNm(runner, u);
  if (u.kind !== "uplink-move") return;
  await undoUplinkMove(runner, u);
  const now = await observeUplink(runner, u.uplink);
  if (!now || JSON.stringify(comparable(now)) !== JSON.stringify(comparable(u.snapshot))) {
    throw new UserError(
      `network ${a.payload.net.name}: rolled back the move of ${u.uplink}, but its state differs from before`,
      `compare \`ip addr show dev ${u.uplink}\` and \`ip route show dev ${u.uplink}\` with the journal`,
    );
  }
}

/** Make one move, then probe the LAN; silence takes it back at once. */
async function moveOne(
  runner: Runner,
  a: Action<UplinkPayload>,
  opts: UplinkOptions,
  progress: (m: string) => void,
): Promise<string[]> {
  const { net, snapshot: snap, backend, probe: target } = a.payload;
  let notes: string[] = [];
  try {
    if (a.payload.backend === "iproute2") await runBatch(runner, a.payload.apply);
    else notes = await moveNm(runner, a.payload.nm, progress, opts.probeTimeoutMs);
  } catch (e) {
    await revert(runner, a);
    const why = e instanceof CommandError ? e.stderr.trim() : String(e);
    throw new UserError(
      `network ${net.name}: moving ${snap.name} onto ${net.bridge}${backend === "nmcli" ? " with NetworkManager" : ""} failed (${why}); the previous state was restored`,
      undefined,
      undefined,
      { cause: e },
    );
  }
  if (!target) return notes;
  const timeoutMs = opts.probeTimeoutMs ?? (backend === "nmcli" ? 30_000 : 10_000);
  if (await probe(runner, target, timeoutMs)) return notes;
  await revert(runner, a);
  throw new UserError(
    `network ${net.name}: after moving ${snap.name} onto bridge ${net.bridge}, ${target} did not answer ` +
      `a ping within ${timeoutMs / 1000} s; the move was rolled back and ${snap.name} has its addresses and routes again`,
    `check that ${target} answers ping from this host before the move; set \`probe:\` to an address ` +
      "on the LAN that answers ping",
  );
}

/**
 * Move every uplink of the run (all or nothing: a failure takes back the moves made before it), then,
 * with `confirmSeconds`, revert them all unless confirmed in time.
 */
export async function applyUplinks(
  actions: Action[],
  ctx: { runner: Runner; stateDir: string; labName: string; progress: (m: string) => void },
  opts: UplinkOptions,
): Promise<string[]> {
  const moves = actions as Action<UplinkPayload>[];
  const notes: string[] = [];
  const done: Action<UplinkPayload>[] = [];
  rmSync(confirmPath(ctx.stateDir), { force: true });
  try {
    for (const a of moves) {
      ctx.progress(`moving ${a.payload.snapshot.name} onto bridge ${a.payload.net.bridge}`);
      const said = await moveOne(ctx.runner, a, opts, ctx.progress);
      done.push(a);
      notes.push(
        `network ${a.payload.net.name}: ${a.payload.snapshot.name} on ${a.payload.net.bridge}${a.payload.backend === "nmcli" ? " (NetworkManager)" : ""}`,
        ...said.map((n) => `network ${a.payload.net.name}: ${n}`),
      );
    }
  } catch (e) {
    for (const a of done.reverse()) await revert(ctx.runner, a).catch(() => {});
    throw e;
  }
  if (opts.confirmSeconds !== undefined && done.length > 0) {
    ctx.progress(
      `keeping the change for ${opts.confirmSeconds} s: press Enter or run \`qnet confirm ${ctx.labName}\` to keep it`,
    );
    if (!(await waitForConfirmation(ctx.stateDir, opts.confirmSeconds, opts.confirmation))) {
      for (const a of done.reverse()) await revert(ctx.runner, a);
      throw new UserError(
        `not confirmed within ${opts.confirmSeconds} s: reverted ${done.map((d) => `${d.payload.snapshot.name} on ${d.payload.net.bridge}`).join(", ")}`,
        `run \`qnet up\` again and confirm (Enter, or \`qnet confirm ${ctx.labName}\`) once you have checked the host is reachable`,
      );
    }
    notes.push("change confirmed");
  }
  return notes;
}
