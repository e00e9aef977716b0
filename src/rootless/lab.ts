// A rootless lab seen from the user's host: its namespace holder and helper started (journaled first) or
// found, qnet itself run inside, and everything taken back from outside, also after the holder died.
import { existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { EXIT, UserError } from "../errors.js";
import { mkdirPrivate } from "../host/files.js";
import { Journal } from "../host/journal.js";
import { ProcessRunner } from "../host/runner.js";
import { acquireLock } from "../host/socket-lock.js";
import { labStateDir } from "../host/state.js";
import { rootlessRefusals } from "../kinds/rootless.js";
import type { Lab } from "../model/lab.js";
import {
  type HelperPlan,
  helperKey,
  helperProblems,
  helperReason,
  helperResolvConf,
  planHelper,
} from "../render/rootless-helper.js";
import { requirePrograms, rootlessState } from "./enter.js";
import { chooseHelper, helperPid, startHelper, stopHelper } from "./helper.js";
import { setUpInside, startHolder, writeResolvConf } from "./namespaces.js";
import { undoRootlessProcess } from "./processes.js";
import {
  holderProcess,
  type RootlessRecord,
  readRootlessRecord,
  writeRootlessRecord,
} from "./record.js";

export {
  type InsideRun,
  insideInfoOf,
  type RootlessState,
  rootlessState,
  runQnetInside,
} from "./enter.js";

/** The outer lock of a rootless lab (host PIDs; the qnet inside takes the lab's own lock). */
export async function lockRootlessLab(stateRoot: string, lab: string, timeoutMs = 5_000) {
  const path = join(stateRoot, `${lab}.rootless.lock`);
  try {
    return await acquireLock(path, { timeoutMs, what: `lab "${lab}"` });
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    throw new UserError(
      `lab "${lab}" is busy: another qnet command holds its lock ${path}`,
      "wait for that `qnet up`/`qnet down` to finish, then try again",
      EXIT.environment,
      { cause: e },
    );
  }
}

export interface PreparedLab {
  dir: string;
  holderPid: number;
  helper: HelperPlan | null;
  /** The holder was started by this run (a failure of the first `up` takes everything back). */
  fresh: boolean;
  notes: string[];
}

/**
 * Before the qnet inside runs `up`: refuse what cannot run rootless (nothing made yet), then make sure
 * the holder runs (a dead one is cleaned up first) and the helper matches the lab's NAT and forwards.
 */
export async function prepareRootlessLab(
  lab: Lab,
  stateRoot: string,
  progress: (msg: string) => void,
): Promise<PreparedLab> {
  requirePrograms(["unshare", "nsenter", "ip"]);
  const refusals = rootlessRefusals(lab).map((r) => r.message);
  const reason = helperReason(lab);
  const tool = reason ? chooseHelper() : null;
  const problems = [...refusals, ...(tool ? helperProblems(lab, tool) : [])];
  if (problems.length > 0)
    throw new UserError(`${problems.join("; ")}; nothing was changed`, undefined, EXIT.environment);
  const dir = labStateDir(stateRoot, lab.name);
  if (existsSync(dir) && !readRootlessRecord(dir) && Journal.read(dir).length > 0)
    throw new UserError(
      `lab ${lab.name} is up as root (in ${dir}), not rootless`,
      `run \`qnet down ${lab.name}\` first`,
      EXIT.usage,
    );
  const notes: string[] = [];
  let state = rootlessState(dir);
  if (state && state.holderPid === null && Journal.read(dir).length > 0) {
    progress(
      `lab ${lab.name}: its namespace holder is gone, and everything inside went with it: cleaning up first`,
    );
    const r = await teardownRootless(dir);
    if (r.errors.length)
      throw new UserError(`cleaning up lab ${lab.name} failed: ${r.errors.join("; ")}`);
    state = null;
  }
  mkdirPrivate(dir);
  const rec: RootlessRecord = state?.rec ?? {
    version: 1,
    uid: process.getuid?.() ?? 0,
    holder: holderProcess(dir),
    helper: null,
  };
  if (!state) writeRootlessRecord(dir, rec);
  const journal = new Journal(dir);
  let holderPid = state?.holderPid ?? null;
  const fresh = holderPid === null;
  try {
    if (holderPid === null) {
      progress("rootless: starting the lab's namespace holder");
      holderPid = await startHolder(dir, journal);
      notes.push(...(await setUpInside(holderPid, dir)));
    }
    const helper = tool ? planHelper(lab, tool, dir) : null;
    const running = rec.helper && helperPid(rec.helper) !== null ? rec.helper : null;
    const same = running !== null && helperKey(running) === helperKey(helper);
    if (!same && (helper || rec.helper)) {
      if (rec.helper) await stopHelper(rec.helper);
      rec.helper = helper;
      writeRootlessRecord(dir, rec);
      if (helper) {
        const ports = helper.ports.map((p) => `${p.proto} ${p.hostAddr}:${p.hostPort}`);
        progress(
          `rootless: starting ${helper.tool} (${reason}${ports.length ? `; publishes ${ports.join(", ")}` : ""})`,
        );
        await startHelper(helper, holderPid, journal);
      }
      writeResolvConf(dir, helperResolvConf(helper));
    }
    return { dir, holderPid, helper, fresh, notes };
  } catch (e) {
    // A first run leaves nothing behind: the holder takes everything inside with it.
    if (fresh) await teardownRootless(dir);
    throw e;
  }
}

/**
 * Take a rootless lab back from the host: stop its helper and holder (everything inside ends with the
 * holder), take back what lives outside the namespaces (files in the cache), remove its state.
 * Run after the qnet inside took its own objects back, or when the holder is already gone.
 */
export async function teardownRootless(
  dir: string,
): Promise<{ undone: string[]; errors: string[] }> {
  const entries = Journal.read(dir)
    .filter((e) => e.undo.kind === "path" || e.undo.kind === "rootless-process")
    .sort((a, b) => b.seq - a.seq);
  const rec = readRootlessRecord(dir);
  // The recorded helper and holder even when `up` died before journaling them (nothing to stop then).
  const extra = [
    ...(rec?.helper ? [stopHelper(rec.helper)] : []),
    ...(rec ? [undoRootlessProcess({ kind: "rootless-process", ...rec.holder })] : []),
  ];
  await Promise.allSettled(extra);
  // The undo table loads every executor: only here, not on each `up` of the user's qnet.
  const { runUndos } = await import("../engine/undo.js");
  const r = await runUndos(entries, { runner: new ProcessRunner(null), stateDir: dir });
  const errors = r.errors.map((e) => e.message);
  if (errors.length === 0) {
    // The lock of the qnet inside, left by one that was killed: nothing inside runs any more.
    rmSync(join(dirname(dir), `${dir.split("/").pop()}.lock`), { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
  return { undone: r.undone, errors };
}
