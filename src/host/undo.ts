// Takes changes back: one idempotent handler per Undo kind; `downLab` replays a lab's journal in reverse.
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { basename, dirname, isAbsolute, join, normalize, resolve } from "node:path";
import { CommandError, UserError } from "../errors.js";
import { natNeeds } from "../render/nftables.js";
import { writeFileAtomic } from "./files.js";
import { parseIpJson } from "./iproute2.js";
import { Journal, type JournalEntry, type Undo } from "./journal.js";
import { netnsExists } from "./netns.js";
import { qmpQuit } from "./qmp.js";
import { ProcessRunner, type Runner } from "./runner.js";
import { labNetns, listLabs, readLabRecord } from "./state.js";

export interface UndoEnv {
  /** Runs commands in the lab's namespace (if any). */
  runner: Runner;
  /** The lab's state directory (batch files go there; `path` undos inside it are always allowed). */
  stateDir: string;
}

export type CustomUndoHandler = (data: unknown, env: UndoEnv) => Promise<void>;

const customHandlers = new Map<string, CustomUndoHandler>();

/** Feature modules register the handler of their `{kind:"custom", handler: name}` undos at import time. */
export function registerUndoHandler(name: string, fn: CustomUndoHandler): void {
  customHandlers.set(name, fn);
}

export interface UndoResult {
  /** What was taken back (the journal entries' `what`), in the order it was done. */
  undone: string[];
  errors: Error[];
}

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

async function undoLinks(entries: Extract<Undo, { kind: "link" }>[], env: UndoEnv): Promise<void> {
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
    // Only a link that still carries the mark: a foreign link that took the name later is left alone.
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
        {
          message: `could not delete ${left.join(", ")}: ${r.stderr.trim()}`,
        },
      );
    }
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

async function undoNetns(name: string, env: UndoEnv): Promise<void> {
  if (!netnsExists(name)) return;
  if (handOver({ kind: "netns", name }, name, env)) return;
  await env.runner.run(["ip", "netns", "del", name], { hostNamespace: true });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true;
    await sleep(25);
  }
  return !pidAlive(pid);
}

/** PIDs whose argv holds the pidfile path or the match string as a whole argument (ours, by construction). */
function pidsByArgv(u: Extract<Undo, { kind: "process" }>): number[] {
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
async function killStarting(u: Extract<Undo, { kind: "process" }>): Promise<void> {
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

async function undoProcess(u: Extract<Undo, { kind: "process" }>): Promise<void> {
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
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  if (await waitGone(pid, 5_000)) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    return;
  }
  if (!(await waitGone(pid, 2_000)))
    throw new Error(`process ${pid} (${u.match}) survived SIGKILL`);
}

async function undoNftTable(u: Extract<Undo, { kind: "nft-table" }>, env: UndoEnv): Promise<void> {
  if (env.runner.netns && !netnsExists(env.runner.netns)) return;
  const r = await env.runner.run(["nft", "delete", "table", u.family, u.table], {
    allowFail: true,
  });
  if (r.exitCode !== 0 && !/No such file or directory|does not exist/i.test(r.stderr)) {
    throw new CommandError(["nft", "delete", "table", u.family, u.table], r.exitCode, r.stderr);
  }
}

/**
 * IPv4 forwarding is one switch per namespace, shared by every lab there. When another lab of the same
 * state root and namespace still needs it, leave it on and give the restore to that lab's journal, so
 * one lab's `down` never breaks another's NAT and the last one out restores the old value.
 */
/**
 * Namespace-wide changes (the namespace itself, ip_forward, bridge-nf-call-*) are shared by every lab in
 * that namespace: while another lab of the same state root still runs there, its journal inherits the
 * undo, and the last lab to go down takes the change back.
 */
function handOver(u: Undo, netns: string | null, env: UndoEnv): boolean {
  const me = resolve(env.stateDir);
  const heir = listLabs(dirname(me)).find((l) => {
    if (l.dir === me || l.netns !== netns) return false;
    const rec = readLabRecord(l.dir);
    if (rec === null) return false;
    // ip_forward goes to a lab that routes; anything else to any lab still in the namespace.
    return u.kind !== "sysctl" || u.key !== "net.ipv4.ip_forward" || natNeeds(rec.lab).ipForward;
  });
  if (!heir) return false;
  new Journal(heir.dir).recordLast({
    what: `${u.kind === "netns" ? `delete network namespace ${u.name}` : `restore ${u.kind === "sysctl" ? `${u.key}=${u.value}` : u.kind}`} (handed over by lab ${basename(me)})`,
    undo: u,
  });
  return true;
}

/** A sysctl of the whole namespace, as opposed to one interface's (net.ipv4.conf.<if>.*). */
const namespaceWide = (key: string) => !/^net\.ipv[46]\.conf\./.test(key);

async function undoSysctl(u: Extract<Undo, { kind: "sysctl" }>, env: UndoEnv): Promise<void> {
  if (!/^[A-Za-z0-9_.\-/]+$/.test(u.key) || /[\n\0]/.test(u.value)) {
    throw new Error(`refusing odd sysctl undo ${JSON.stringify(u)}`);
  }
  if (env.runner.netns && !netnsExists(env.runner.netns)) return;
  if (namespaceWide(u.key) && handOver(u, env.runner.netns, env)) return;
  const r = await env.runner.run(["sysctl", "-q", "-w", `${u.key}=${u.value}`], {
    allowFail: true,
  });
  // An interface's setting is gone with the interface (a bridge deleted by hand): nothing to restore.
  if (r.exitCode !== 0 && !(!namespaceWide(u.key) && /cannot stat|No such file/i.test(r.stderr))) {
    throw new CommandError(["sysctl", "-q", "-w", `${u.key}=${u.value}`], r.exitCode, r.stderr);
  }
}

function undoPath(path: string, env: UndoEnv): void {
  const p = normalize(path);
  const inState = p.startsWith(`${resolve(env.stateDir)}/`);
  // Outside the state dir only a named, absolute path at least two levels deep: never `/` or `/etc`.
  if (!inState && (!isAbsolute(p) || p.split("/").filter(Boolean).length < 2)) {
    throw new Error(`refusing to remove ${JSON.stringify(path)}`);
  }
  rmSync(p, { recursive: true, force: true });
}

async function undoOne(u: Undo, env: UndoEnv): Promise<void> {
  switch (u.kind) {
    case "link":
      return undoLinks([u], env);
    case "netns":
      return undoNetns(u.name, env);
    case "process":
      return undoProcess(u);
    case "nft-table":
      return undoNftTable(u, env);
    case "sysctl":
      return undoSysctl(u, env);
    case "argv":
      await env.runner.run(u.argv, { allowFail: true });
      return;
    case "path":
      return undoPath(u.path, env);
    case "custom": {
      const fn = customHandlers.get(u.handler);
      if (!fn) throw new Error(`no undo handler registered for "${u.handler}"`);
      return fn(u.data, env);
    }
  }
}

/**
 * Take back entries in the order given (callers pass newest first). Consecutive link entries go to
 * one `ip -batch`. Every failure is collected; the rest still run.
 */
export async function runUndos(
  entries: Omit<JournalEntry, "seq">[],
  env: UndoEnv,
): Promise<UndoResult> {
  const res: UndoResult = { undone: [], errors: [] };
  for (let i = 0; i < entries.length; ) {
    const e = entries[i]!;
    if (e.undo.kind === "link") {
      let j = i;
      const group: Omit<JournalEntry, "seq">[] = [];
      while (j < entries.length && entries[j]!.undo.kind === "link") group.push(entries[j++]!);
      try {
        await undoLinks(
          group.map((g) => g.undo as Extract<Undo, { kind: "link" }>),
          env,
        );
        res.undone.push(...group.map((g) => g.what));
      } catch (err) {
        res.errors.push(err as Error);
      }
      i = j;
      continue;
    }
    if (e.undo.kind === "process") {
      // Processes stop independently (QEMU takes a moment to exit after quit): stop a run of them at once.
      let j = i;
      const group: Omit<JournalEntry, "seq">[] = [];
      while (j < entries.length && entries[j]!.undo.kind === "process") group.push(entries[j++]!);
      const settled = await Promise.allSettled(group.map((g) => undoOne(g.undo, env)));
      settled.forEach((r, k) => {
        if (r.status === "fulfilled") res.undone.push(group[k]!.what);
        else
          res.errors.push(
            new Error(`undo of "${group[k]!.what}" failed: ${(r.reason as Error).message}`, {
              cause: r.reason,
            }),
          );
      });
      i = j;
      continue;
    }
    try {
      await undoOne(e.undo, env);
      res.undone.push(e.what);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      res.errors.push(new Error(`undo of "${e.what}" failed: ${error.message}`, { cause: error }));
    }
    i++;
  }
  return res;
}

/**
 * Tear a lab down from its state directory alone: replay the journal newest first, then remove the
 * directory. Works without the topology file and after `up` was killed at any point. When some undo
 * fails the directory is kept (handlers are idempotent, so `down` can simply be run again).
 */
export async function downLab(opts: {
  stateDir: string;
  runner?: Runner;
}): Promise<{ undone: string[]; errors: Error[] }> {
  const stateDir = resolve(opts.stateDir);
  if (!existsSync(stateDir)) return { undone: [], errors: [] };
  const runner = opts.runner ?? new ProcessRunner(labNetns(stateDir));
  await waitForBatchProcesses(stateDir);
  const entries = Journal.read(stateDir).sort((a, b) => b.seq - a.seq);
  const res = await runUndos(entries, { runner, stateDir });
  if (res.errors.length === 0) {
    rmSync(stateDir, { recursive: true, force: true });
  } else {
    res.errors.push(
      new UserError(
        `${res.errors.length} undo step(s) failed; state kept in ${stateDir}`,
        "fix the cause and run `qnet down` again",
      ),
    );
  }
  return res;
}
