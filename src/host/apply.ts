// The host executor: observe, plan, journal every action, then one `ip -batch` for all link changes.
import { CommandError } from "../errors.js";
import { type HostAction, planHostNetwork } from "../plan/host-plan.js";
import type { LabContext } from "./context.js";
import { observeHost } from "./iproute2.js";
import { ensureNetns, netnsExists } from "./netns.js";
import { bridgeNetfilterReport, ensureKernelFeatures, type PrereqReport } from "./prereq.js";
import { batchFile, runIpBatch, runUndos } from "./undo.js";

export interface ApplyResult {
  /** The actions applied (empty when the host already matched the lab). */
  actions: HostAction[];
  changed: boolean;
  /** Modules loaded; null when nothing had to be created. */
  prereq: PrereqReport | null;
  /** The br_netfilter options set on the lab's bridges, for people. */
  netfilter: string[];
}

/** The action a failing batch line belongs to (ip reports "Command failed FILE:LINE"). */
function failedAction(actions: HostAction[], stderr: string): HostAction | null {
  const m = /Command failed .*:(\d+)\s*$/m.exec(stderr);
  if (!m) return null;
  let line = Number(m[1]);
  for (const a of actions) {
    if (line <= a.batch.length) return a;
    line -= a.batch.length;
  }
  return null;
}

/**
 * Bring the host's bridges and taps to what the lab wants. Observes in one dump, plans, journals
 * every action's undo (fsynced) and only then runs ONE `ip -batch` process for all link changes.
 * A second run finds nothing to do and changes nothing. On failure the actions of this run are
 * rolled back newest first and a CommandError (argv, exit code, stderr) is thrown.
 */
export async function applyHostNetwork(ctx: LabContext): Promise<ApplyResult> {
  const ns = ctx.runner.netns;
  if (ns && !netnsExists(ns)) {
    await ensureNetns({ name: ns, journal: ctx.journal, progress: ctx.progress });
  }
  const snapshot = await observeHost(ctx.runner);
  const actions = planHostNetwork(ctx.lab, snapshot);
  const netfilter = bridgeNetfilterReport(ctx.lab);
  if (actions.length === 0) {
    ctx.progress("host network: up to date, nothing to change");
    return { actions, changed: false, prereq: null, netfilter };
  }
  const prereq = await ensureKernelFeatures(ctx.runner, ctx.lab);
  for (const n of prereq.notes) ctx.progress(n);

  const entries = actions.flatMap((a) => (a.undo ? [{ what: a.what, undo: a.undo }] : []));
  ctx.journal.record(...entries);
  const lines = actions.flatMap((a) => a.batch);
  const r = await runIpBatch(ctx.runner, ctx.stateDir, "host", lines, { allowFail: true });
  if (r.exitCode !== 0) {
    const rollback = await runUndos(entries.slice().reverse(), {
      runner: ctx.runner,
      stateDir: ctx.stateDir,
    });
    const culprit = failedAction(actions, r.stderr);
    const argv = [...(ns ? ["ip", "-n", ns] : ["ip"]), "-batch", batchFile(ctx.stateDir, "host")];
    const rb = rollback.errors.length
      ? `; rollback incomplete: ${rollback.errors.map((e) => e.message).join("; ")} (run qnet down)`
      : `; rolled back ${rollback.undone.length} action(s) of this run`;
    throw new CommandError(argv, r.exitCode, r.stderr, {
      message: `host network change failed (exit ${r.exitCode})${culprit ? ` at "${culprit.what}"` : ""}: ${r.stderr.trim()}${rb}`,
    });
  }
  const created = actions.filter((a) => a.reason === "absent").length;
  ctx.progress(
    `host network: ${actions.length} action(s) in one ip -batch (${created} created); ${netfilter.length ? "nf_call_iptables/ip6tables/arptables 0 on qnet's bridges" : "no bridges"}`,
  );
  return { actions, changed: true, prereq, netfilter };
}
