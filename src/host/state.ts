// Per-lab state directories under a state root (/run/qnet): creation, the per-lab lock, lab.json, listing.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { EXIT, UserError } from "../errors.js";
import type { Lab } from "../model/lab.js";
import { isName, isPlainPath, NAME_RULE, PLAIN_PATH_RULE } from "../model/names.js";
import { defaultStateRoot } from "../rootless/state-root.js";
import { mkdirPrivate, writeFileAtomic } from "./files.js";
import { Journal } from "./journal.js";
import { acquireLock } from "./socket-lock.js";

/** /run/qnet for root; a normal user's labs are rootless, under $XDG_RUNTIME_DIR/qnet (src/rootless). */
export const DEFAULT_STATE_ROOT = defaultStateRoot();
const LAB_FILE = "lab.json";

/** What `lab.json` holds: enough for `down` and `status` to work without the topology file. */
export interface LabRecord {
  lab: Lab;
  /** Run options of the `up` that wrote it (netns override, --no-vms, ...), as the CLI passes them. */
  options: Record<string, unknown>;
  /** The topology file it came from, if any (for messages). */
  file?: string | null;
  createdAt: string;
}

export interface LabStateHandle {
  /** The lab's state directory (0700). */
  dir: string;
  /** Release the lab's lock (idempotent; also released at process exit). */
  release(): void;
}

function checkLabName(lab: string): void {
  if (!isName(lab)) {
    throw new UserError(
      `invalid lab name ${JSON.stringify(lab)}`,
      `a lab name is ${NAME_RULE}`,
      EXIT.usage,
    );
  }
}

export function labStateDir(stateRoot: string | undefined, lab: string): string {
  checkLabName(lab);
  const dir = join(resolve(stateRoot ?? DEFAULT_STATE_ROOT), lab);
  if (!isPlainPath(dir)) {
    throw new UserError(
      `state directory ${JSON.stringify(dir)} cannot be used`,
      `the state directory must be ${PLAIN_PATH_RULE}: pass another --state-dir`,
      EXIT.usage,
    );
  }
  return dir;
}

/**
 * Create the lab's state directory and take its lock. A second up/down of the same lab waits up to
 * `lockTimeoutMs` (5 s), then fails naming the PID that holds it. The lock file lives next to the
 * directory (`<root>/<lab>.lock`) so `down` can remove the directory while holding it.
 */
export async function openLabState(opts: {
  stateRoot?: string;
  lab: string;
  lockTimeoutMs?: number;
}): Promise<LabStateHandle> {
  const dir = labStateDir(opts.stateRoot, opts.lab);
  const root = resolve(opts.stateRoot ?? DEFAULT_STATE_ROOT);
  mkdirPrivate(root);
  const lockPath = join(root, `${opts.lab}.lock`);
  const timeoutMs = opts.lockTimeoutMs ?? 5_000;
  let handle: { release(): void };
  try {
    handle = await acquireLock(lockPath, { timeoutMs, what: `lab "${opts.lab}"` });
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    const pid = lockHolder(lockPath) ?? "?";
    throw new UserError(
      `lab "${opts.lab}" is busy: another qnet command (PID ${pid}) holds its lock ${lockPath}; waited ${timeoutMs} ms`,
      "wait for that `qnet up`/`qnet down` to finish, then try again",
      EXIT.environment,
      { cause: err },
    );
  }
  try {
    mkdirPrivate(dir);
  } catch (err) {
    handle.release();
    throw err;
  }
  return { dir, release: () => handle.release() };
}

function lockHolder(lockPath: string): string | null {
  try {
    return readFileSync(lockPath, "utf8").trim().split(" ")[0] ?? null;
  } catch {
    return null;
  }
}

/** Write `lab.json` atomically (before the first host change of an `up`). */
export function saveLabRecord(
  dir: string,
  lab: Lab,
  options: Record<string, unknown> = {},
  file: string | null = null,
): void {
  const rec: LabRecord = { lab, options, file, createdAt: new Date().toISOString() };
  writeFileAtomic(join(dir, LAB_FILE), `${JSON.stringify(rec, null, 2)}\n`);
}

/** The lab record of a state directory, or null when `up` died before writing it. */
export function readLabRecord(dir: string): LabRecord | null {
  const path = join(dir, LAB_FILE);
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as LabRecord;
  } catch {
    return null;
  }
}

/** The network namespace a lab's links live in: lab.json's, else the one its journal created. */
export function labNetns(dir: string): string | null {
  const rec = readLabRecord(dir);
  if (rec) return recordNetns(rec);
  const ns = Journal.read(dir).find((e) => e.undo.kind === "netns");
  return ns?.undo.kind === "netns" ? ns.undo.name : null;
}

/** The effective namespace of a record: a `netns` run option (--netns) wins over the file's. */
export function recordNetns(rec: LabRecord): string | null {
  const o = rec.options?.netns;
  return typeof o === "string" && o !== "" ? o : (rec.lab.netns ?? null);
}

export interface KnownLab {
  name: string;
  dir: string;
  netns: string | null;
  /** The topology file, when lab.json names it. */
  file: string | null;
  /** Entries in the journal (0: nothing was changed yet). */
  journalEntries: number;
  /** lab.json exists. */
  complete: boolean;
}

/** Every lab with a state directory under the root, sorted by name. */
export function listLabs(stateRoot: string = DEFAULT_STATE_ROOT): KnownLab[] {
  const root = resolve(stateRoot);
  if (!existsSync(root)) return [];
  const out: KnownLab[] = [];
  for (const name of readdirSync(root).sort()) {
    if (!isName(name)) continue;
    const dir = join(root, name);
    try {
      if (!statSync(dir).isDirectory()) continue;
    } catch {
      continue;
    }
    const rec = readLabRecord(dir);
    out.push({
      name,
      dir,
      netns: rec ? recordNetns(rec) : labNetns(dir),
      file: rec?.file ?? null,
      journalEntries: Journal.read(dir).length,
      complete: rec !== null,
    });
  }
  return out;
}

/** `${XDG_DATA_HOME:-$HOME/.local/share}/qnet`: what outlives a lab (persistent overlays). */
export function qnetDataDir(): string {
  const xdg = process.env.XDG_DATA_HOME;
  return join(xdg?.startsWith("/") ? xdg : join(homedir(), ".local", "share"), "qnet");
}
