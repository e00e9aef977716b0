// The engine: observe the host once, plan every kind against it (pure), then apply the actions in kind
// order, journaling each one's undo before the change; a failure rolls the run back from the journal.
import { release } from "node:os";
import { UserError } from "../errors.js";
import type { Observation } from "../facts/types.js";
import { readLiveImpairments } from "../host/impair-live.js";
import { Journal } from "../host/journal.js";
import { applyLinkBatch } from "../host/links.js";
import { type ObserveOptions, observe } from "../host/observe.js";
import { requirePrograms } from "../host/programs.js";
import type { Runner } from "../host/runner.js";
import { qnetDataDir } from "../host/state.js";
import { BATCHED, desiredAll, type LabPlan, observeRequest, planLab } from "../kinds/index.js";
import type { Action, KindName, PlanEnv } from "../kinds/types.js";
import { withLiveImpairments } from "../model/impair-live.js";
import type { HostFacts, Lab } from "../model/lab.js";
import { rootlessPlace } from "../rootless/inside.js";
import { type ExecContext, timed } from "./context.js";
import { EXECUTORS, PROGRAMS } from "./executors.js";
import { runUndos } from "./undo.js";

/** br_netfilter's sysctls belong to each network namespace from Linux 5.3 on. */
export function bridgeNfSysctlsPerNetns(kernel = release()): boolean {
  const [major = 0, minor = 0] = kernel.split(/[.-]/).map(Number);
  return major > 5 || (major === 5 && minor >= 3);
}

/**
 * Everything a plan depends on. The lab's live impairments (`qnet impair`, kept in its state directory)
 * take the place of the topology's, so plan, status and up agree with them.
 */
export function planEnv(
  lab: Lab,
  opts: {
    stateDir: string;
    netns: string | null;
    vms: boolean;
    machine: HostFacts;
    cold?: boolean;
  },
): PlanEnv {
  return {
    lab: withLiveImpairments(lab, readLiveImpairments(opts.stateDir)),
    ...opts,
    dataDir: qnetDataDir(),
    // QNET_BOOT=cold here, so that plan, status and up agree on it.
    cold: opts.cold === true || process.env.QNET_BOOT === "cold",
    bridgeNfPerNetns: bridgeNfSysctlsPerNetns(),
    rootless: rootlessPlace(),
  };
}

/** Observe what the lab's kinds need, and plan them: what `plan`, `status` and `up` all start from. */
export async function observeAndPlan(
  env: PlanEnv,
  runner: Runner,
  only?: ReadonlySet<KindName>,
  options: ObserveOptions = {},
): Promise<{ obs: Observation; plan: LabPlan }> {
  const desired = desiredAll(env);
  const backends = new Map(
    env.lab.networks.flatMap((n) => (n.type === "bridged" ? [[n.uplink, n.backend] as const] : [])),
  );
  const obs = await observe(runner, observeRequest(env, desired, only), { ...options, backends });
  return { obs, plan: planLab(env, obs, desired, only) };
}

/**
 * Refuse, before any change, actions whose executors need programs this host does not have: every
 * missing one is named with its Debian package (UserError, exit 4).
 */
export function checkPrograms(actions: Action[]): void {
  const byKind = new Map<KindName, Action[]>();
  for (const a of actions) byKind.set(a.kind, [...(byKind.get(a.kind) ?? []), a]);
  requirePrograms([...byKind].flatMap(([kind, acts]) => PROGRAMS[kind](acts)));
}

/** Consecutive actions that run together: one kind each, or all link kinds in one batch. */
function groups(actions: Action[]): Action[][] {
  const out: Action[][] = [];
  for (const a of actions) {
    const last = out.at(-1);
    const joins =
      last && (last[0]!.kind === a.kind || (BATCHED.has(last[0]!.kind) && BATCHED.has(a.kind)));
    if (joins) last.push(a);
    else out.push([a]);
  }
  return out;
}

/**
 * Apply a plan's actions in order. Each group's undo records are journaled (fsynced) before any of its
 * changes; link actions run in one `ip -batch`. Returns the executors' notes. Throws at the first failure,
 * leaving the rollback to the caller (`rollback` below), which takes back the whole run.
 */
export async function applyActions(actions: Action[], ctx: ExecContext): Promise<string[]> {
  const notes: string[] = [];
  for (const group of groups(actions)) {
    const kinds = [...new Set(group.map((a) => a.kind))].join("+");
    await timed(ctx.timings, `apply ${kinds} (${group.length})`, async () => {
      ctx.journal.record(...group.flatMap((a) => (a.undo ? [{ what: a.what, undo: a.undo }] : [])));
      const exec = EXECUTORS[group[0]!.kind];
      if (exec === "ip-batch") {
        await applyLinkBatch(group, ctx);
        ctx.progress(`host network: ${group.length} change(s) in one ip -batch`);
      } else {
        const said = await exec(group, ctx);
        if (Array.isArray(said)) notes.push(...said);
      }
    });
  }
  return notes;
}

/** Take back everything journaled after `startSeq`, newest first; returns the errors. */
export async function rollback(
  stateDir: string,
  runner: Runner,
  startSeq: number,
): Promise<Error[]> {
  const mine = Journal.read(stateDir)
    .filter((e) => e.seq > startSeq)
    .sort((a, b) => b.seq - a.seq);
  return (await runUndos(mine, { runner, stateDir })).errors;
}

/**
 * Observe, plan and apply in one call, for the kinds in `only` (all when absent), without a rollback:
 * what tests and benchmarks use to drive one part of the engine against a real host.
 */
export async function reconcile(
  ctx: Omit<ExecContext, "obs">,
  opts: { only?: KindName[]; vms?: boolean; observe?: ObserveOptions } = {},
): Promise<{ plan: LabPlan; notes: string[] }> {
  const env = planEnv(ctx.lab, {
    stateDir: ctx.stateDir,
    netns: ctx.runner.netns,
    vms: opts.vms ?? true,
    machine: ctx.facts,
  });
  const only = opts.only ? new Set(opts.only) : undefined;
  const { obs, plan } = await observeAndPlan(env, ctx.runner, only, opts.observe);
  if (plan.problems.length > 0)
    throw new UserError(`${plan.problems.join("; ")}; nothing was changed`);
  const notes = await applyActions(plan.actions, { ...ctx, obs });
  return { plan, notes: [...plan.notes, ...notes] };
}
