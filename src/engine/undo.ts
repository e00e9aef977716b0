// Taking changes back: one idempotent handler per undo kind (a static, exhaustive table), runs of them
// newest first, and `down`, which replays a lab's journal from its state directory alone.
import { existsSync, rmSync } from "node:fs";
import { isAbsolute, normalize, resolve } from "node:path";
import { UserError } from "../errors.js";
import { undoFdb } from "../host/fdb.js";
import { undoHostsBlock } from "../host/hosts-file.js";
import { undoQdisc } from "../host/impair.js";
import { Journal } from "../host/journal.js";
import { undoLinks, waitForBatchProcesses } from "../host/links.js";
import { undoNetns } from "../host/netns.js";
import { undoIptablesRule, undoNftRule, undoNftTable } from "../host/nftables.js";
import { undoNmConf } from "../host/nm-unmanaged.js";
import { undoProcess } from "../host/process.js";
import { ProcessRunner, type Runner } from "../host/runner.js";
import { labNetns } from "../host/state.js";
import { undoSysctl } from "../host/sysctl.js";
import { undoUplinkMove } from "../host/uplink.js";
import { undoUplinkNm } from "../host/uplink-nm.js";
import type { JournalEntry, Undo } from "../model/undo.js";
import { undoRootlessProcess } from "../rootless/processes.js";

export interface UndoEnv {
  /** Runs commands in the lab's namespace (if any). */
  runner: Runner;
  /** The lab's state directory (batch files go there; `path` undos inside it are always allowed). */
  stateDir: string;
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

type Handler<K extends Undo["kind"]> = (
  u: Extract<Undo, { kind: K }>,
  env: UndoEnv,
) => Promise<void>;

export const UNDO: { [K in Undo["kind"]]: Handler<K> } = {
  link: (u, env) => undoLinks([u], env),
  netns: (u, env) => undoNetns(u.name, env.stateDir, env.runner),
  process: (u) => undoProcess(u),
  "nft-table": (u, env) => undoNftTable(u, env.runner),
  sysctl: (u, env) => undoSysctl(u, env),
  path: async (u, env) => undoPath(u.path, env),
  "iptables-rule": (u, env) => undoIptablesRule(u, env.runner),
  "nft-rule": (u, env) => undoNftRule(u, env.runner),
  "hosts-block": (u) => undoHostsBlock(u),
  "uplink-move": (u, env) => undoUplinkMove(env.runner, u),
  "uplink-nm": (u, env) => undoUplinkNm(env.runner, u),
  "nm-conf": (u, env) => undoNmConf(env.runner, u),
  fdb: (u, env) => undoFdb(u, env.runner),
  qdisc: (u, env) => undoQdisc(u, env),
  "rootless-process": (u) => undoRootlessProcess(u),
};

export async function undoOne(u: Undo, env: UndoEnv): Promise<void> {
  const h = UNDO[u.kind] as Handler<typeof u.kind> | undefined;
  if (!h)
    throw new Error(
      `unknown undo kind ${JSON.stringify(u.kind)} (a journal of another qnet version?)`,
    );
  await h(u as never, env);
}

export interface UndoResult {
  /** What was taken back (the journal entries' `what`), in the order it was done. */
  undone: string[];
  errors: Error[];
}

/**
 * Take back entries in the order given (callers pass newest first). Consecutive link entries go to one
 * `ip -batch`; consecutive processes stop in parallel. Every failure is collected; the rest still run.
 */
export async function runUndos(
  entries: Omit<JournalEntry, "seq">[],
  env: UndoEnv,
): Promise<UndoResult> {
  const res: UndoResult = { undone: [], errors: [] };
  const fail = (e: Omit<JournalEntry, "seq">, err: unknown) => {
    const error = err instanceof Error ? err : new Error(String(err));
    res.errors.push(new Error(`undo of "${e.what}" failed: ${error.message}`, { cause: error }));
  };
  for (let i = 0; i < entries.length; ) {
    const kind = entries[i]!.undo.kind;
    let j = i;
    while (j < entries.length && entries[j]!.undo.kind === kind) j++;
    const run = kind === "link" || kind === "process" ? entries.slice(i, j) : [entries[i]!];
    if (kind === "link") {
      try {
        await undoLinks(
          run.map((g) => g.undo as Extract<Undo, { kind: "link" }>),
          env,
        );
        res.undone.push(...run.map((g) => g.what));
      } catch (err) {
        fail(run[0]!, err);
      }
    } else {
      // Processes stop independently (QEMU takes a moment to exit after quit): a run of them at once.
      const settled = await Promise.allSettled(run.map((g) => undoOne(g.undo, env)));
      settled.forEach((r, k) => {
        if (r.status === "fulfilled") res.undone.push(run[k]!.what);
        else fail(run[k]!, r.reason);
      });
    }
    i += run.length;
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
