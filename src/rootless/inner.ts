// The two halves of a rootless lab's `status` and `down`: what the qnet inside its namespaces does (the
// lab's own objects), and the host-side objects the outer qnet adds (the holder and the helper).
import { runUndos } from "../engine/undo.js";
import { Journal } from "../host/journal.js";
import { waitForBatchProcesses } from "../host/links.js";
import { ProcessRunner } from "../host/runner.js";
import { openLabState } from "../host/state.js";
import {
  type FullStatus,
  fullStatus,
  renderStatusTable,
  type StatusObject,
} from "../lab/status.js";
import type { RootlessState } from "./lab.js";

/** Inside: the lab's objects, as `qnet status` reports them. */
export function insideStatus(dir: string): Promise<FullStatus> {
  return fullStatus(dir);
}

/**
 * Inside: take back the lab's objects from its journal, newest first, under the lab's lock; the host-side
 * processes and the state directory stay for the outer qnet, which takes them back next.
 */
export async function insideDown(
  stateRoot: string,
  lab: string,
): Promise<{ undone: string[]; errors: string[] }> {
  const state = await openLabState({ stateRoot, lab });
  try {
    await waitForBatchProcesses(state.dir);
    const entries = Journal.read(state.dir)
      .filter((e) => e.undo.kind !== "rootless-process")
      .sort((a, b) => b.seq - a.seq);
    const r = await runUndos(entries, { runner: new ProcessRunner(null), stateDir: state.dir });
    return { undone: r.undone, errors: r.errors.map((e) => e.message) };
  } finally {
    state.release();
  }
}

/** The host-side objects of a rootless lab, as status objects. */
export function hostObjects(st: RootlessState): StatusObject[] {
  const out: StatusObject[] = [
    st.holderPid !== null
      ? {
          kind: "rootless-holder",
          name: `pid ${st.holderPid}`,
          state: "present",
          detail: "keeps the lab's user, network, mount and PID namespaces",
        }
      : {
          kind: "rootless-holder",
          name: "holder",
          state: "missing",
          detail: "gone, and everything inside went with it",
        },
  ];
  const h = st.rec.helper;
  if (h) {
    const ports = h.ports.map((p) => `${p.proto} ${p.hostAddr}:${p.hostPort}`).join(", ");
    out.push({
      kind: h.tool,
      name: h.ifname,
      state: st.helperPid !== null ? "present" : "missing",
      detail:
        st.helperPid !== null
          ? `pid ${st.helperPid}: the lab's way out${ports ? `; publishes ${ports} on this host` : ""}`
          : `not running (log: ${h.log}); \`qnet up\` starts it again`,
    });
  }
  return out;
}

/** `qnet status` of a rootless lab, for people. */
export function renderRootlessStatus(s: FullStatus): string {
  return renderStatusTable(s).replace(/^lab ([^\s:]+)/, "lab $1 (rootless)");
}
