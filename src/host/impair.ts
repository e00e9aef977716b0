// Impairments on the host: every qdisc and filter change of a run in one `tc -batch` (from a file in the
// state directory, like the links' `ip -batch`), and their undo: delete qnet's root qdisc (handle 5154:)
// or its ingress redirect (filter priority 5154), only when they are still there and still qnet's.
import { CommandError } from "../errors.js";
import { parseFilters, parseQdiscs } from "../facts/tc-json.js";
import type { ImpairPayload } from "../kinds/impair.js";
import type { Action } from "../kinds/types.js";
import type { Undo } from "../model/undo.js";
import { FILTER_PREF, QDISC_HANDLE } from "../render/tc.js";
import { writeFileAtomic } from "./files.js";
import { batchFile } from "./links.js";
import { netnsExists } from "./netns.js";
import type { Runner } from "./runner.js";

/** The action a failing batch line belongs to (tc reports "Command failed FILE:LINE"). */
function failedAction(actions: Action[], stderr: string): Action | null {
  const m = /Command failed .*:(\d+)\s*$/m.exec(stderr);
  if (!m) return null;
  let line = Number(m[1]);
  for (const a of actions) {
    const n = (a.payload as ImpairPayload).lines.length;
    if (line <= n) return a;
    line -= n;
  }
  return null;
}

/** Run tc -batch over a file in the state directory; stops at the first failing line. */
export async function runTcBatch(
  runner: Runner,
  stateDir: string,
  purpose: string,
  lines: string[],
) {
  const file = batchFile(stateDir, purpose);
  writeFileAtomic(file, `${lines.join("\n")}\n`);
  return { file, result: await runner.run(["tc", "-batch", file], { allowFail: true }) };
}

/** Apply the impair actions of a run in one `tc -batch`; a failure names the action. */
export async function applyImpairs(
  actions: Action[],
  ctx: { runner: Runner; stateDir: string; progress: (m: string) => void },
): Promise<void> {
  const lines = actions.flatMap((a) => (a.payload as ImpairPayload).lines);
  if (lines.length === 0) return;
  const { file, result: r } = await runTcBatch(ctx.runner, ctx.stateDir, "tc", lines);
  if (r.exitCode !== 0) {
    const culprit = failedAction(actions, r.stderr);
    const ns = ctx.runner.netns;
    throw new CommandError(
      [...(ns ? ["ip", "netns", "exec", ns] : []), "tc", "-batch", file],
      r.exitCode,
      r.stderr,
      {
        message: `impairment change failed (exit ${r.exitCode})${culprit ? ` at "${culprit.what}"` : ""}: ${r.stderr.trim()}`,
      },
    );
  }
  ctx.progress(`impairments: ${lines.length} tc change(s) in one tc -batch`);
}

/** Take back qnet's root qdisc or ingress redirect on a device, if they are still qnet's. */
export async function undoQdisc(
  u: Extract<Undo, { kind: "qdisc" }>,
  env: { runner: Runner },
): Promise<void> {
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(u.dev))
    throw new Error(`refusing odd qdisc undo ${JSON.stringify(u)}`);
  if (env.runner.netns && !netnsExists(env.runner.netns)) return;
  if (u.parent === "root") {
    const r = await env.runner.run(["tc", "-json", "qdisc", "show", "dev", u.dev], {
      allowFail: true,
    });
    if (r.exitCode !== 0) return; // the device is gone, and its qdiscs with it
    const mine = parseQdiscs(r.stdout).some((q) => q.root && q.handle === QDISC_HANDLE);
    if (mine) await env.runner.run(["tc", "qdisc", "del", "dev", u.dev, "root"]);
    return;
  }
  const r = await env.runner.run(["tc", "-json", "filter", "show", "dev", u.dev, "ingress"], {
    allowFail: true,
  });
  if (r.exitCode !== 0) return;
  if (parseFilters(r.stdout).some((f) => f.pref === FILTER_PREF))
    await env.runner.run(["tc", "qdisc", "del", "dev", u.dev, "ingress"]);
}
