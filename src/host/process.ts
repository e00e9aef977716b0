// Processes qnet started (QEMU, dnsmasq): stop one found by its pidfile and checked by its command line,
// QMP `quit` first for QEMU; kill one still starting (no pidfile yet) by what its argv names.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { Undo } from "../model/undo.js";
import { qmpQuit } from "./qmp.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether `pid` still runs. A zombie has exited: it only waits for its parent (for a daemon, init) to
 * reap it, which some inits do only every second or two.
 */
export function pidAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // `pid (comm) S ...`: the state follows the last `)` (comm may hold spaces and parentheses).
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

/** Wait for `pid` to go, at most `ms`; true when gone. Polls /proc (a daemon is not our child). */
export async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  let pause = 2;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true;
    await sleep(pause);
    pause = Math.min(pause * 2, 25);
  }
  return !pidAlive(pid);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopPid(pid: number, graceMs = 5_000): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  if (await waitGone(pid, graceMs)) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    return;
  }
  if (!(await waitGone(pid, 2_000))) throw new Error(`process ${pid} survived SIGKILL`);
}

type ProcessUndo = Extract<Undo, { kind: "process" }>;

/** PIDs whose argv holds the pidfile path or the match string as a whole argument (ours, by construction). */
function pidsByArgv(u: ProcessUndo): number[] {
  const out: number[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (argv.includes(u.pidfile) || argv.includes(u.match)) out.push(Number(pid));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * No pidfile: the process may still be starting (an `up` killed right after spawning QEMU, which writes
 * its pidfile only once it has daemonized). Kill whatever carries our pidfile path or match in its argv,
 * again until none is left (a daemonizing parent may fork while we look).
 */
async function killStarting(u: ProcessUndo): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const pids = pidsByArgv(u);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    for (const pid of pids) await waitGone(pid, 2_000);
    await sleep(50);
  }
  throw new Error(`processes of ${u.match} kept reappearing`);
}

/** Stop the process of an undo record: only if its pidfile's PID still carries the match in its argv. */
export async function undoProcess(u: ProcessUndo): Promise<void> {
  let text: string;
  try {
    text = readFileSync(u.pidfile, "utf8").trim();
  } catch {
    return killStarting(u); // never started, still starting, or cleaned up
  }
  const pid = Number(text.split(/\s+/)[0]);
  if (!Number.isInteger(pid) || pid <= 1) return killStarting(u); // a pidfile not yet written
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return; // gone
  }
  // `match` is one whole argument of the process qnet started; a reused PID does not have it.
  if (!argv.includes(u.match)) return;
  if (u.qmp && existsSync(u.qmp)) {
    try {
      await qmpQuit(u.qmp, 3_000);
      if (await waitGone(pid, 2_000)) return;
    } catch {
      // fall through to signals
    }
  }
  await stopPid(pid);
}
