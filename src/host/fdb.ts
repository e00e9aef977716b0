// Forwarding entries of VXLAN devices on the host: every entry of a run in one `bridge -batch` (from a
// file, like the link batch), and the undo of one entry (only while its device carries the lab's mark).
import { join } from "node:path";
import { CommandError } from "../errors.js";
import { parseIpJson } from "../facts/ip-json.js";
import { type FdbPayload, fdbLine } from "../kinds/fdb.js";
import type { Action } from "../kinds/types.js";
import type { Undo } from "../model/undo.js";
import { writeFileAtomic } from "./files.js";
import { netnsExists } from "./netns.js";
import type { Runner } from "./runner.js";

/** Apply the FDB actions of a run in one `bridge -batch` process; a failure names the action. */
export async function applyFdb(
  actions: Action[],
  ctx: { runner: Runner; stateDir: string },
): Promise<void> {
  const lines = actions.flatMap((a) => (a.payload as FdbPayload).lines);
  if (lines.length === 0) return;
  const file = join(ctx.stateDir, "fdb.batch");
  writeFileAtomic(file, `${lines.join("\n")}\n`);
  const r = await ctx.runner.run(["bridge", "-batch", file], { allowFail: true });
  if (r.exitCode === 0) return;
  const m = /Command failed .*:(\d+)\s*$/m.exec(r.stderr);
  const culprit = m ? actions[Number(m[1]) - 1] : undefined;
  throw new CommandError(["bridge", "-batch", file], r.exitCode, r.stderr, {
    message: `forwarding entries failed (exit ${r.exitCode})${culprit ? ` at "${culprit.what}"` : ""}: ${r.stderr.trim()}`,
  });
}

/** Take one entry back, if its device still carries the lab's mark (idempotent: gone is fine). */
export async function undoFdb(u: Extract<Undo, { kind: "fdb" }>, runner: Runner): Promise<void> {
  if (runner.netns && !netnsExists(runner.netns)) return;
  const r = await runner.run(["ip", "-json", "link", "show", "dev", u.device], { allowFail: true });
  if (r.exitCode !== 0) return; // the device is gone, and its entries with it
  const l = parseIpJson(r.stdout, "")[0];
  if (!l || l.alias !== u.alias) return;
  const del = fdbLine("del", u.device, u.dst).split(" ");
  const d = await runner.run(["bridge", ...del], { allowFail: true });
  if (d.exitCode !== 0 && !/No such file|not found|Cannot find/i.test(d.stderr))
    throw new CommandError(["bridge", ...del], d.exitCode, d.stderr);
}
