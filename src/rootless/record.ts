// rootless.json: what makes a lab's state directory a rootless lab's, and where its host-side processes
// (namespace holder, pasta or slirp4netns) are recorded. Written before any of them starts.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../host/files.js";
import type { HelperPlan } from "../render/rootless-helper.js";
import type { RootlessProcess } from "./processes.js";

const FILE = "rootless.json";

export interface RootlessRecord {
  version: 1;
  /** The user whose lab it is (uid on the host). */
  uid: number;
  /** The process whose namespaces the lab lives in (PID 1 inside). */
  holder: Omit<RootlessProcess, "kind">;
  /** The running pasta or slirp4netns, as started; null when the lab needs none. */
  helper: HelperPlan | null;
}

export function rootlessRecordPath(stateDir: string): string {
  return join(stateDir, FILE);
}

/** Whether a lab's state directory is a rootless lab's. */
export function isRootlessLab(stateDir: string): boolean {
  return existsSync(rootlessRecordPath(stateDir));
}

export function readRootlessRecord(stateDir: string): RootlessRecord | null {
  try {
    const r = JSON.parse(readFileSync(rootlessRecordPath(stateDir), "utf8")) as RootlessRecord;
    return r.version === 1 && r.holder ? r : null;
  } catch {
    return null;
  }
}

export function writeRootlessRecord(stateDir: string, rec: RootlessRecord): void {
  writeFileAtomic(rootlessRecordPath(stateDir), `${JSON.stringify(rec, null, 2)}\n`);
}

/** The holder of a lab's state directory: its pidfile there, and the argument that marks it. */
export function holderProcess(stateDir: string): Omit<RootlessProcess, "kind"> {
  return {
    role: "holder",
    pidfile: join(stateDir, "holder.pid"),
    match: `--qnet-holder=${stateDir}`,
  };
}
