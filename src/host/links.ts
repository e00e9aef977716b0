// Links on the host: every change of a run in one `ip -batch` (from a file, so a killed qnet cannot leave a
// torn line), and their undo: delete links that still carry the lab's mark, all at once.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { CommandError } from "../errors.js";
import { parseIpJson } from "../facts/ip-json.js";
import type { Action } from "../kinds/types.js";
import type { Undo } from "../model/undo.js";
import { writeFileAtomic } from "./files.js";
import { netnsExists } from "./netns.js";
import type { Runner } from "./runner.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The file a lab's `ip -batch` runs from (never stdin: a killed qnet must not leave a torn line). */
export function batchFile(stateDir: string, purpose: string): string {
  return join(stateDir, `${purpose}.batch`);
}

/** Run `ip [-force] -batch FILE` for lines; returns the failed result (not thrown) when allowFail. */
export async function runIpBatch(
  runner: Runner,
  stateDir: string,
  purpose: string,
  lines: string[],
  opts: { force?: boolean; allowFail?: boolean } = {},
) {
  const file = batchFile(stateDir, purpose);
  writeFileAtomic(file, `${lines.join("\n")}\n`);
  const argv = ["ip", ...(opts.force ? ["-force"] : []), "-batch", file];
  return runner.run(argv, { allowFail: opts.allowFail ?? false });
}

/** The action a failing batch line belongs to (ip reports "Command failed FILE:LINE"). */
function failedAction(actions: Action[], stderr: string): Action | null {
  const m = /Command failed .*:(\d+)\s*$/m.exec(stderr);
  if (!m) return null;
  let line = Number(m[1]);
  for (const a of actions) {
    const n = a.batch?.length ?? 0;
    if (line <= n) return a;
    line -= n;
  }
  return null;
}

/** Apply the link actions of a run in one `ip -batch` process; a failure names the action. */
export async function applyLinkBatch(
  actions: Action[],
  ctx: { runner: Runner; stateDir: string },
): Promise<void> {
  const lines = actions.flatMap((a) => a.batch ?? []);
  if (lines.length === 0) return;
  const r = await runIpBatch(ctx.runner, ctx.stateDir, "host", lines, { allowFail: true });
  if (r.exitCode === 0) return;
  const culprit = failedAction(actions, r.stderr);
  const ns = ctx.runner.netns;
  throw new CommandError(
    [...(ns ? ["ip", "-n", ns] : ["ip"]), "-batch", batchFile(ctx.stateDir, "host")],
    r.exitCode,
    r.stderr,
    {
      message: `host network change failed (exit ${r.exitCode})${culprit ? ` at "${culprit.what}"` : ""}: ${r.stderr.trim()}`,
    },
  );
}

/** Wait (bounded) for `ip -batch` processes still reading this lab's batch files (an `up` killed mid-batch). */
export async function waitForBatchProcesses(stateDir: string, timeoutMs = 30_000): Promise<void> {
  const needle = resolve(stateDir);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let busy = false;
    for (const pid of readdirSync("/proc")) {
      if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
      let cmd: string;
      try {
        cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        continue;
      }
      const argv = cmd.split("\0");
      if (
        argv.includes("-batch") &&
        argv.some((a) => a.startsWith(`${needle}/`) && a.endsWith(".batch"))
      ) {
        busy = true;
        break;
      }
    }
    if (!busy || Date.now() > deadline) return;
    await sleep(50);
  }
}

/**
 * Batch lines deleting links. One `link del` per device costs the kernel an RCU grace period each
 * (~20 ms); so the doomed links are first moved to a fresh link group and deleted with one
 * `link del group G` (one unregister for all). The per-device deletes follow as a fallback; with
 * -force they only report "Cannot find device" for links already gone.
 */
export function deleteLines(doomed: string[], observed: string): string[] {
  if (doomed.length < 3) return doomed.map((n) => `link del dev ${n}`);
  // A group number far from the ones people use (0 default, small numbers in /etc/iproute2/group)
  // and held by no link now.
  let group = 0x51000000 + ((process.pid * 7919 + Date.now()) % 0xffffff);
  while (observed.includes(`"group":"${group}"`)) group++;
  return [...doomed.map((n) => `link set dev ${n} group ${group}`), `link del group ${group}`];
}

/** Delete the links of these undo records that still carry their mark (a foreign link that took a name later stays). */
export async function undoLinks(
  entries: Extract<Undo, { kind: "link" }>[],
  env: { runner: Runner; stateDir: string },
): Promise<void> {
  const ns = env.runner.netns;
  if (ns && !netnsExists(ns)) return; // the namespace is gone, and its links with it
  const observe = async () => {
    const r = await env.runner.run(["ip", "-json", "link", "show"]);
    return Object.assign(new Map(parseIpJson(r.stdout, "").map((l) => [l.name, l])), {
      raw: r.stdout,
    });
  };
  const links = await observe();
  const doomed: string[] = [];
  for (const e of entries) {
    const l = links.get(e.name);
    if (l && l.alias === e.alias && !doomed.includes(e.name)) doomed.push(e.name);
  }
  if (doomed.length === 0) return;
  let r = await runIpBatch(env.runner, env.stateDir, "down", deleteLines(doomed, links.raw), {
    force: true,
    allowFail: true,
  });
  if (r.exitCode !== 0) {
    let after = await observe();
    let left = doomed.filter((n) => after.has(n));
    if (left.length > 0) {
      // Fallback: one delete per device (a kernel without group deletes, ...).
      const lines = left.map((n) => `link del dev ${n}`);
      r = await runIpBatch(env.runner, env.stateDir, "down", lines, {
        force: true,
        allowFail: true,
      });
      after = await observe();
      left = left.filter((n) => after.has(n));
    }
    if (left.length > 0) {
      throw new CommandError(
        ["ip", "-force", "-batch", batchFile(env.stateDir, "down")],
        r.exitCode,
        r.stderr,
        { message: `could not delete ${left.join(", ")}: ${r.stderr.trim()}` },
      );
    }
  }
}
