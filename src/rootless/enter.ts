// Entering a rootless lab from the host: where it stands (its record, holder and helper alive or not), and
// qnet itself run inside its namespaces with nsenter. Light on purpose: every command on such a lab loads it.
import { spawn } from "node:child_process";
import { EXIT, UserError } from "../errors.js";
import { livePid } from "../host/pidfile.js";
import { findProgram, missingProgramsError, programPath } from "../host/programs.js";
import { labStateDir } from "../host/state.js";
import type { HelperPlan } from "../render/rootless-helper.js";
import { type InsideInfo, insideEnv } from "./inside.js";
import { CLI_SCRIPT, enterArgv } from "./namespaces.js";
import { type RootlessRecord, readRootlessRecord } from "./record.js";

/** Programs a rootless lab runs on the host, each named with its package when missing. */
export function requirePrograms(programs: string[]): void {
  const missing = programs.filter((p) => findProgram(p) === null);
  if (missing.length) throw missingProgramsError(missing, "a rootless lab");
}

/** Where a rootless lab stands: its record and the PIDs of its holder and helper (null: not running). */
export interface RootlessState {
  dir: string;
  rec: RootlessRecord;
  holderPid: number | null;
  helperPid: number | null;
}

export function rootlessState(dir: string): RootlessState | null {
  const rec = readRootlessRecord(dir);
  if (!rec) return null;
  return {
    dir,
    rec,
    holderPid: livePid(rec.holder.pidfile, rec.holder.match),
    helperPid: rec.helper ? livePid(rec.helper.pidfile, rec.helper.match) : null,
  };
}

/** What the qnet inside must know: the state root, and where published ports arrive. */
export function insideInfoOf(stateRoot: string, helper: HelperPlan | null): InsideInfo {
  return { stateRoot, publishedVia: helper?.ifname ?? null };
}

export interface InsideRun {
  /** Exit code, or 128 + signal number when the qnet inside was killed. */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
}

/**
 * Run qnet itself inside a holder's namespaces with `args` (stdio passed through, or stdout captured).
 * SIGINT and SIGTERM go to the qnet inside (same process group); this side waits for it.
 */
export function runQnetInside(
  holderPid: number,
  args: string[],
  info: InsideInfo,
  opts: { capture?: boolean; prefix?: string[] } = {},
): Promise<InsideRun> {
  requirePrograms(["nsenter", "unshare"]);
  const argv = [
    ...(opts.prefix ?? enterArgv(holderPid)),
    process.execPath,
    ...process.execArgv,
    CLI_SCRIPT,
    ...args,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["inherit", opts.capture ? "pipe" : "inherit", "inherit"],
      env: { ...process.env, PATH: programPath(), ...insideEnv(info) },
    });
    let stdout = "";
    child.stdout?.on("data", (d) => {
      stdout += d;
    });
    const ignore = () => {};
    process.on("SIGINT", ignore);
    process.on("SIGTERM", ignore);
    child.once("error", (e) => {
      process.off("SIGINT", ignore);
      process.off("SIGTERM", ignore);
      reject(e);
    });
    child.once("close", (code, signal) => {
      process.off("SIGINT", ignore);
      process.off("SIGTERM", ignore);
      const n = signal ? 128 + (SIGNALS[signal] ?? 1) : (code ?? 1);
      resolve({ code: n, signal, stdout });
    });
  });
}

const SIGNALS: Partial<Record<NodeJS.Signals, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGKILL: 9,
  SIGTERM: 15,
};

/** The running holder of a rootless lab, or the error that says it is gone. */
export function alive(dir: string, lab: string) {
  const st = rootlessState(dir);
  if (!st || st.holderPid === null)
    throw new UserError(
      `lab ${lab} is gone: its namespace holder died, and everything inside went with it`,
      `\`qnet status ${lab}\` or \`qnet down ${lab}\` cleans up its state; \`qnet up\` builds it again`,
      EXIT.failure,
    );
  return { holderPid: st.holderPid, helper: st.rec.helper };
}

/** Run qnet with `args` inside a lab that is up (stdio passed through); its exit code. */
export async function runGivenInside(
  stateDir: string,
  lab: string,
  args: string[],
): Promise<number> {
  const st = alive(labStateDir(stateDir, lab), lab);
  return (await runQnetInside(st.holderPid, args, insideInfoOf(stateDir, st.helper))).code;
}
