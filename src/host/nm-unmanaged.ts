// Keeping NetworkManager off the lab's interfaces: qnet's conf.d file written into NetworkManager's own /run
// (through its root when it lives in another mount namespace) and reloaded; `managed no` per device.
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../errors.js";
import type { NmUnmanagedPayload } from "../kinds/nm-unmanaged.js";
import type { Action } from "../kinds/types.js";
import type { Undo } from "../model/undo.js";
import { nmConfHead } from "../render/nm-conf.js";
import { writeFileAtomic } from "./files.js";
import { findNetworkManager, NM_RUN_CONF_DIR, nmcli, nmPath } from "./network-manager.js";
import type { Runner } from "./runner.js";

export async function applyNmUnmanaged(actions: Action[], runner: Runner): Promise<string[]> {
  const nm = findNetworkManager(runner.netns);
  if (!nm) {
    throw new UserError(
      `NetworkManager does not run${runner.netns ? ` in namespace ${runner.netns}` : ""} any more`,
      "run `qnet up` again",
    );
  }
  const notes: string[] = [];
  for (const a of actions) {
    const p = a.payload as NmUnmanagedPayload;
    if (p.op === "write") {
      const dir = nmPath(nm, NM_RUN_CONF_DIR);
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      writeFileAtomic(join(dir, p.file), p.content, 0o644);
      // New devices follow the file at once; a reload keeps it in force without a restart.
      const r = await nmcli(runner, nm, ["general", "reload", "conf"], { allowFail: true });
      if (r.exitCode !== 0)
        notes.push(
          `NetworkManager did not reload its configuration (${r.stderr.trim()}); ${p.file} takes effect at its next start`,
        );
    } else {
      await nmcli(runner, nm, ["device", "set", p.device, "managed", "no"]);
    }
  }
  return notes;
}

/** Remove the lab's file (only if it still starts with the lab's mark) and reload NetworkManager. */
export async function undoNmConf(
  runner: Runner,
  u: Extract<Undo, { kind: "nm-conf" }>,
): Promise<void> {
  const nm = findNetworkManager(runner.netns);
  const path = join(nm ? nm.root : "/", NM_RUN_CONF_DIR, u.file);
  if (!existsSync(path)) return;
  if (!readFileSync(path, "utf8").startsWith(`${nmConfHead(u.lab)}\n`)) return;
  rmSync(path, { force: true });
  if (nm) await nmcli(runner, nm, ["general", "reload", "conf"], { allowFail: true });
}
