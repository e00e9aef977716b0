// Who will run QEMU, and whether that user can read and write a device node (access(2) or mode + group).
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import type { Runner } from "../host/runner.js";
import type { Lab } from "../model/lab.js";
import { probe } from "./run.js";

/** Distinct users the lab's VMs run as; null stands for the user running qnet. */
export function qemuUsers(lab: Lab | null): (string | null)[] {
  if (!lab || lab.vms.length === 0) return [null];
  return [...new Set(lab.vms.map((v) => v.user))].sort((a, b) =>
    String(a).localeCompare(String(b)),
  );
}

export interface Identity {
  uid: number;
  gids: number[];
}

/** uid and groups of a named user (`id` on the host), or null when the user does not exist. */
export async function lookupUser(runner: Runner, user: string): Promise<Identity | null> {
  const u = await probe(runner, ["id", "-u", "--", user], { hostNamespace: true });
  const g = await probe(runner, ["id", "-G", "--", user], { hostNamespace: true });
  if (!u.ok || !g.ok) return null;
  return { uid: Number(u.stdout.trim()), gids: g.stdout.trim().split(/\s+/).map(Number) };
}

export type Access =
  | { ok: true }
  | { ok: false; reason: "missing" | "not-char" | "denied"; mode?: number; gid?: number };

/** Can `who` (null: this process) open `path` read-write? Decided by access(2) for this process, by mode bits otherwise. */
export async function canReadWrite(
  path: string,
  who: Identity | null,
  wantChar: boolean,
): Promise<Access> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch {
    return { ok: false, reason: "missing" };
  }
  if (wantChar && !st.isCharacterDevice()) return { ok: false, reason: "not-char" };
  const mode = st.mode & 0o7777;
  if (who === null) {
    try {
      await access(path, constants.R_OK | constants.W_OK);
      return { ok: true };
    } catch {
      return { ok: false, reason: "denied", mode, gid: st.gid };
    }
  }
  if (who.uid === 0) return { ok: true };
  const rw = (shift: number) => ((mode >> shift) & 0o6) === 0o6;
  const ok = st.uid === who.uid ? rw(6) : who.gids.includes(st.gid) ? rw(3) : rw(0);
  return ok ? { ok: true } : { ok: false, reason: "denied", mode, gid: st.gid };
}

/** Name of a group id (from `getent group`), or the number. */
export async function groupName(runner: Runner, gid: number): Promise<string> {
  const r = await probe(runner, ["getent", "group", String(gid)], { hostNamespace: true });
  return r.ok ? (r.stdout.split(":")[0] ?? String(gid)) : String(gid);
}
