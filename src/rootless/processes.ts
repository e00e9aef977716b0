// A rootless lab's host-side processes (the namespace holder, pasta or slirp4netns): alive or not, and
// stopped from the host by pidfile and command line, like any process qnet starts.

import { livePid } from "../host/pidfile.js";
import { undoProcess } from "../host/process.js";
import type { Undo } from "../model/undo.js";
import { insideInfo } from "./inside.js";

export type RootlessProcess = Extract<Undo, { kind: "rootless-process" }>;

/** The PID of a rootless process if it runs, checked by its command line; null otherwise. */
export function rootlessPid(p: Pick<RootlessProcess, "pidfile" | "match">): number | null {
  return livePid(p.pidfile, p.match);
}

/** Stop a rootless lab's host-side process (SIGTERM, then SIGKILL); idempotent. */
export async function undoRootlessProcess(u: RootlessProcess): Promise<void> {
  if (insideInfo()) {
    // Inside the lab's namespaces the host's PIDs mean nothing: the outer qnet takes these back.
    throw new Error(`internal: the ${u.role} of a rootless lab is stopped from the host only`);
  }
  await undoProcess({ kind: "process", pidfile: u.pidfile, match: u.match });
}
