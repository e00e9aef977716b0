// Exclusive, crash-safe lock file (`<path>.lock`) so only one client talks on a socket at a time.
//
// Scheme: the lock file holds "<pid> <start-time> <nonce>". It is created complete and atomically
// with link(2) from a private temp file (no window where it exists half-written). A holder is
// alive when /proc/<pid>/stat exists with the same start time (so a reused PID does not keep a
// dead holder's lock). A stale lock is broken by rename(2) to a private name, then checked: if
// what we moved is not the stale content we judged, someone else's fresh lock was moved and it
// is put back. Locks held by this process are also tracked in memory, so two clients in one
// process exclude each other, and are removed on exit.

import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { UserError } from "../errors.js";
import { sleep } from "./unix-json.js";

const heldByUs = new Map<string, string>(); // lock path -> our token
let exitHookInstalled = false;

export interface LockHandle {
  readonly path: string;
  release(): void;
}

export interface AcquireOptions {
  timeoutMs: number;
  intervalMs?: number;
  signal?: AbortSignal;
  /** Says what is locked, for the error message. */
  what?: string;
}

/** Take the lock at `lockPath`, waiting while a live holder has it. */
export async function acquireLock(lockPath: string, opts: AcquireOptions): Promise<LockHandle> {
  const deadline = Date.now() + opts.timeoutMs;
  const intervalMs = opts.intervalMs ?? 50;
  const token = `${process.pid} ${startTimeOf(process.pid) ?? "?"} ${randomBytes(8).toString("hex")}\n`;
  for (;;) {
    opts.signal?.throwIfAborted();
    if (tryCreate(lockPath, token)) {
      heldByUs.set(lockPath, token);
      installExitHook();
      return { path: lockPath, release: () => releaseLock(lockPath, token) };
    }
    // null: released between our attempt and the read (retry), or unreadable (then the deadline ends it).
    const holder = readOrNull(lockPath);
    if (holder !== null && isStale(lockPath, holder)) {
      breakStale(lockPath, holder);
      continue;
    }
    if (Date.now() + intervalMs > deadline) {
      const pid = holder?.split(" ")[0] ?? "?";
      throw new UserError(
        `${opts.what ?? lockPath} is in use by process ${pid} (lock ${lockPath}); waited ${opts.timeoutMs} ms`,
        "only one client may talk to it at a time; wait for the other command to finish",
      );
    }
    await sleep(holder === null ? 1 : intervalMs, opts.signal);
  }
}

function tryCreate(lockPath: string, token: string): boolean {
  const tmp = `${lockPath}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  fs.writeFileSync(tmp, token, { flag: "wx", mode: 0o600 });
  try {
    fs.linkSync(tmp, lockPath);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function releaseLock(lockPath: string, token: string): void {
  if (heldByUs.get(lockPath) !== token) return;
  heldByUs.delete(lockPath);
  if (readOrNull(lockPath) === token) fs.rmSync(lockPath, { force: true });
}

function isStale(lockPath: string, content: string): boolean {
  const [pidText, start] = content.trim().split(" ");
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return true; // not ours to understand: junk
  if (pid === process.pid) return heldByUs.get(lockPath) !== content; // leaked by this process
  const actual = startTimeOf(pid);
  if (actual === undefined) return true; // no such process
  return start !== "?" && start !== actual; // PID reused by another process
}

function breakStale(lockPath: string, stale: string): void {
  const moved = `${lockPath}.${process.pid}.${randomBytes(6).toString("hex")}.stale`;
  try {
    fs.renameSync(lockPath, moved);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return; // someone else broke it
    throw err;
  }
  try {
    if (readOrNull(moved) !== stale) {
      // We raced with a new holder and moved its fresh lock: put it back if the slot is free.
      try {
        fs.linkSync(moved, lockPath);
      } catch {
        // The slot was taken again meanwhile; that holder wins, the moved one lost its lock.
      }
    }
  } finally {
    fs.rmSync(moved, { force: true });
  }
}

function readOrNull(path: string): string | null {
  try {
    return fs.readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or undefined if gone. */
function startTimeOf(pid: number): string | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return rest[19]; // fields 3.. start at index 0, so field 22 is index 19
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const [path, token] of heldByUs) {
      try {
        if (readOrNull(path) === token) fs.rmSync(path, { force: true });
      } catch {
        // best effort at exit
      }
    }
  });
}
