// Where labs keep their state: /run/qnet for root; for a normal user $XDG_RUNTIME_DIR/qnet, else
// /tmp/qnet-<uid> (0700, and refused when another user owns it: /tmp is shared).
import { chmodSync, lstatSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { EXIT, UserError } from "../errors.js";
import { insideInfo } from "./inside.js";

export const ROOT_STATE_ROOT = "/run/qnet";

/** The state root of a normal user (pure: uid and environment given). */
export function userStateRoot(uid: number, env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  return xdg?.startsWith("/") ? join(xdg, "qnet") : `/tmp/qnet-${uid}`;
}

/** The state root commands use unless --state-dir says otherwise. */
export function defaultStateRoot(): string {
  const inside = insideInfo();
  if (inside) return inside.stateRoot;
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? ROOT_STATE_ROOT : userStateRoot(uid);
}

/**
 * Make sure a user's state root is theirs alone: created 0700 when missing; refused when it is not a
 * directory (a symlink planted in /tmp), or another user owns it; tightened to 0700 when it is theirs.
 */
export function ensurePrivateRoot(dir: string, uid = process.getuid?.() ?? 0): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
      throw new UserError(
        `cannot create the state root ${dir}: ${(e as Error).message}`,
        "set XDG_RUNTIME_DIR to a directory of yours, or pass --state-dir",
        EXIT.environment,
      );
    }
  }
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid) {
    throw new UserError(
      `the state root ${dir} is ${st.isDirectory() ? `owned by uid ${st.uid}, not by you (uid ${uid})` : "not a directory"}`,
      "another user may have made it to intercept your labs: remove it (as its owner or root), or pass --state-dir",
      EXIT.environment,
    );
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}
