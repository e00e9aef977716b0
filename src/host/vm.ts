// QEMU processes of a lab: launch detached (journaled first), find running ones, stop them.

import { spawn } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { UserError } from "../errors.js";
import { vmFiles } from "../lab/paths.js";
import type { Vm } from "../model/lab.js";
import type { VmRuntime } from "../render/qemu-args.js";
import { qemuNameArg, vmArgv } from "../render/qemu-args.js";
import type { LabContext } from "./context.js";
import type { Undo } from "./journal.js";
import { livePid } from "./pidfile.js";
import { qmpQueryStatus } from "./qmp.js";
import { inNetns } from "./runner.js";

/** The string in QEMU's argv (`-name …,process=`) that proves a PID is this lab's VM. */
export function vmProcessTag(lab: string, vm: string): string {
  return qemuNameArg(lab, vm);
}

/** How to stop a lab's VM: QMP quit, then signals, only if its pidfile's PID still carries its -name. */
export function vmStopUndo(stateDir: string, lab: string, vm: string): Undo {
  const f = vmFiles(stateDir, vm);
  return { kind: "process", pidfile: f.pidfile, match: vmProcessTag(lab, vm), qmp: f.qmp };
}

export type VmState = "running" | "paused" | "stopped" | "unknown";

export interface VmStatus {
  name: string;
  state: VmState;
  pid: number | null;
  detail: string;
}

export async function vmStatus(stateDir: string, lab: string, vm: string): Promise<VmStatus> {
  const f = vmFiles(stateDir, vm);
  const pid = livePid(f.pidfile, vmProcessTag(lab, vm));
  if (pid === null) return { name: vm, state: "stopped", pid: null, detail: "no QEMU process" };
  try {
    const s = await qmpQueryStatus(f.qmp, 3_000);
    return { name: vm, state: s.running ? "running" : "paused", pid, detail: `QEMU ${s.status}` };
  } catch (e) {
    return {
      name: vm,
      state: "unknown",
      pid,
      detail: `QMP did not answer: ${(e as Error).message}`,
    };
  }
}

function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/**
 * Launch one VM detached (-daemonize) inside the lab's namespace, after journaling how to stop it.
 * Returns false when it already runs (left untouched). QEMU's own output goes to <vm>.qemu.log.
 */
export async function launchVm(ctx: LabContext, vm: Vm, rt: VmRuntime): Promise<boolean> {
  const f = vmFiles(ctx.stateDir, vm.name);
  const tag = vmProcessTag(ctx.lab.name, vm.name);
  if (livePid(f.pidfile, tag) !== null) return false;
  mkdirSync(dirname(f.pidfile), { recursive: true, mode: 0o700 });
  const argv = inNetns(ctx.runner.netns, vmArgv(ctx.lab, vm, ctx.facts, rt));
  ctx.journal.record({
    what: `start VM ${vm.name}`,
    undo: vmStopUndo(ctx.stateDir, ctx.lab.name, vm.name),
  });
  const fd = openSync(f.stderrLog, "w", 0o600);
  try {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", fd, fd] });
    const exitCode = await new Promise<number | null>((resolve) => {
      child.on("error", () => resolve(null));
      child.on("exit", (code) => resolve(code));
    });
    const r = { exitCode };
    if (r.exitCode !== 0 || !existsSync(f.pidfile)) {
      throw new UserError(
        `VM ${vm.name} failed to start (QEMU exit code ${r.exitCode ?? "none"}):\n${tail(f.stderrLog) || "(no output)"}`,
        `full QEMU output: ${f.stderrLog}`,
      );
    }
    // QEMU's -daemonize sets umask 027 before it creates its sockets: tighten them to owner-only
    // (they sit in the 0700 state directory meanwhile).
    for (const path of [f.qmp, f.qga, f.serial, f.serialLog]) {
      try {
        chmodSync(path, 0o600);
      } catch {
        // created later by QEMU (the console log appears with the first output)
      }
    }
  } finally {
    closeSync(fd);
  }
  return true;
}
