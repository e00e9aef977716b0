// `qnet status` without a lab, for rootless labs: the user's own (a lab whose holder died is said so and
// cleaned up), and for root every user's it can see, marked with their owner and never changed.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type KnownLab, listLabs } from "../host/state.js";
import { isName } from "../model/names.js";
import { rootlessState } from "./enter.js";
import { ROOT_STATE_ROOT } from "./state-root.js";

export interface ListedLab extends KnownLab {
  state: string;
  /** Rootless labs: the holder's PID on the host (null: gone). */
  rootless?: { holderPid: number | null };
  /** Another user's lab (root's view): that user's name. */
  owner?: string;
}

/** What `qnet status` says of the rootless states. */
export const ROOTLESS_SAY: Record<string, string> = {
  "up-rootless": "up (rootless)",
  "holder-gone": "holder gone: everything inside went with it (state cleaned up)",
  busy: "busy (another qnet command holds it)",
  "holder-gone-foreign": "holder gone (its owner's next qnet command cleans it up)",
};

/**
 * Mark the rootless labs among `labs` (all under `stateRoot`): up, or gone (cleaned up here, when the
 * lab is the caller's and no other qnet holds it); then, for root (in /run/qnet), other users' labs.
 */
export async function withRootlessLabs(
  stateRoot: string,
  labs: (KnownLab & { state: string })[],
): Promise<ListedLab[]> {
  const uid = process.getuid?.() ?? 0;
  const out: ListedLab[] = [];
  for (const l of labs) {
    const st = rootlessState(l.dir);
    if (!st) {
      out.push(l);
      continue;
    }
    if (st.holderPid !== null) {
      out.push({ ...l, state: "up-rootless", rootless: { holderPid: st.holderPid } });
      continue;
    }
    if (st.rec.uid !== uid) {
      out.push({ ...l, state: "holder-gone-foreign", rootless: { holderPid: null } });
      continue;
    }
    out.push({ ...l, state: await cleanUpGone(stateRoot, l.name), rootless: { holderPid: null } });
  }
  // Root's own state root only: a private --state-dir lists what is in it, nothing else.
  if (uid === 0 && stateRoot === ROOT_STATE_ROOT) out.push(...otherUsersLabs(stateRoot));
  return out;
}

/** Clean up a lab whose holder is gone, unless another qnet holds it (an `up` still starting). */
export async function cleanUpGone(stateRoot: string, lab: string): Promise<string> {
  // Loaded only here: the teardown brings the engine, which a plain listing does not need.
  const { lockRootlessLab, teardownRootless } = await import("./lab.js");
  let lock: { release(): void };
  try {
    lock = await lockRootlessLab(stateRoot, lab, 0);
  } catch {
    return "busy";
  }
  try {
    const dir = join(stateRoot, lab);
    const st = rootlessState(dir);
    if (!st) return "holder-gone";
    if (st.holderPid !== null) return "up-rootless";
    const r = await teardownRootless(dir);
    return r.errors.length
      ? `holder gone; cleaning up failed: ${r.errors.join("; ")}`
      : "holder-gone";
  } finally {
    lock.release();
  }
}

/** uid → user name, from /etc/passwd (the uid itself when unknown). */
function userNames(): Map<number, string> {
  const m = new Map<number, string>();
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const f = line.split(":");
      if (f.length > 2 && /^\d+$/.test(f[2]!)) m.set(Number(f[2]), f[0]!);
    }
  } catch {}
  return m;
}

/** The state roots of normal users that root can see: /run/user/<uid>/qnet and /tmp/qnet-<uid>. */
export function userStateRoots(): { root: string; uid: number }[] {
  const out: { root: string; uid: number }[] = [];
  const add = (root: string) => {
    try {
      const st = statSync(root);
      if (st.isDirectory() && st.uid !== 0) out.push({ root, uid: st.uid });
    } catch {}
  };
  const list = (dir: string) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  for (const u of list("/run/user")) if (/^\d+$/.test(u)) add(join("/run/user", u, "qnet"));
  for (const t of list("/tmp")) if (/^qnet-\d+$/.test(t)) add(join("/tmp", t));
  return out;
}

/** Other users' rootless labs (read only: root never changes them). */
function otherUsersLabs(ownRoot: string): ListedLab[] {
  const names = userNames();
  const out: ListedLab[] = [];
  for (const { root, uid } of userStateRoots()) {
    if (root === ownRoot || !existsSync(root)) continue;
    for (const l of listLabs(root)) {
      if (!isName(l.name)) continue;
      const st = rootlessState(l.dir);
      if (!st) continue;
      out.push({
        ...l,
        owner: names.get(uid) ?? String(uid),
        state: st.holderPid !== null ? "up-rootless" : "holder-gone-foreign",
        rootless: { holderPid: st.holderPid },
      });
    }
  }
  return out;
}
