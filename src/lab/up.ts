// `qnet up`: observe the host, plan every object of the lab against it, apply the difference; on failure
// take back what this run did, newest first, unless the user asked to keep it.
import { rmSync } from "node:fs";
import { type ExecContext, type Timing, timed } from "../engine/context.js";
import {
  applyActions,
  checkPrograms,
  observeAndPlan,
  planEnv,
  rollback,
} from "../engine/engine.js";
import { EXIT, UserError } from "../errors.js";
import { detectFacts } from "../host/facts.js";
import { Journal } from "../host/journal.js";
import { ProcessRunner } from "../host/runner.js";
import { openLabState, readLabRecord, recordNetns, saveLabRecord } from "../host/state.js";
import { type BootRecord, readBootRecord } from "../host/vm.js";
import type { Lab } from "../model/lab.js";

export interface UpOptions {
  stateRoot?: string;
  /** Run the lab in this namespace (overrides the file's `netns`). */
  netns?: string | null;
  /** Bring up only the host side; the user starts QEMU with `qnet args`. */
  noVms?: boolean;
  /** Boot every VM cold, never from a template. */
  cold?: boolean;
  /** Seconds to wait for every guest agent (default 120). */
  waitSeconds?: number;
  /** Keep what this run made when it fails (default: roll it back). */
  keepOnFailure?: boolean;
  /** `bridged` networks: revert the uplink move unless confirmed within this many seconds. */
  confirmSeconds?: number;
  /** Resolves when the user confirms (e.g. presses Enter); `qnet confirm LAB` works too. */
  confirmation?: Promise<unknown>;
  /** How long the LAN may take to answer the probe after an uplink move. */
  probeTimeoutMs?: number;
  /** The topology file, for the record. */
  file?: string | null;
  /** Collect each phase's duration into the result. */
  timings?: boolean;
  progress?: (msg: string) => void;
}

export interface UpResult {
  lab: string;
  stateDir: string;
  netns: string | null;
  /** What changed, one line each; empty when the lab was already up as described. */
  changes: string[];
  notes: string[];
  vms: { name: string; started: boolean; ready: boolean; boot: BootRecord | null }[];
  /** Each phase's duration (with `timings`). */
  timings?: Timing[];
}

export async function up(lab: Lab, opts: UpOptions = {}): Promise<UpResult> {
  const progress = opts.progress ?? (() => {});
  const netns = opts.netns ?? lab.netns;
  const state = await openLabState({
    ...(opts.stateRoot ? { stateRoot: opts.stateRoot } : {}),
    lab: lab.name,
  });
  try {
    const previous = readLabRecord(state.dir);
    if (previous && Journal.read(state.dir).length > 0 && recordNetns(previous) !== netns) {
      const where = (ns: string | null) =>
        ns ? `network namespace ${ns}` : "the host's namespace";
      throw new UserError(
        `lab ${lab.name} is up in ${where(recordNetns(previous))}, not ${where(netns)}`,
        `run \`qnet down ${lab.name}\` first, or use the same --netns`,
        EXIT.usage,
      );
    }
    const runner = new ProcessRunner(netns);
    const facts = detectFacts();
    const env = planEnv(lab, {
      stateDir: state.dir,
      netns,
      vms: !opts.noVms,
      machine: facts,
      cold: !!opts.cold,
    });
    const timings: Timing[] | undefined = opts.timings ? [] : undefined;
    progress("observing the host");
    const { obs, plan } = await timed(timings, "observe and plan", () =>
      observeAndPlan(env, runner),
    );
    try {
      if (plan.problems.length > 0)
        throw new UserError(`${plan.problems.join("; ")}; nothing was changed`);
      checkPrograms(plan.actions);
    } catch (e) {
      // Nothing changed yet: a first run leaves no state behind.
      if (Journal.read(state.dir).length === 0) rmSync(state.dir, { recursive: true, force: true });
      throw e;
    }
    const journal = new Journal(state.dir);
    const startSeq = Journal.read(state.dir).reduce((m, e) => Math.max(m, e.seq), 0);
    saveLabRecord(state.dir, lab, { netns, noVms: !!opts.noVms }, opts.file ?? null);
    const ctx: ExecContext = {
      lab,
      stateDir: state.dir,
      runner,
      journal,
      facts,
      obs,
      progress,
      ...(timings ? { timings } : {}),
      options: {
        ...(opts.waitSeconds !== undefined ? { waitSeconds: opts.waitSeconds } : {}),
        ...(opts.confirmSeconds !== undefined ? { confirmSeconds: opts.confirmSeconds } : {}),
        ...(opts.confirmation ? { confirmation: opts.confirmation } : {}),
        ...(opts.probeTimeoutMs !== undefined ? { probeTimeoutMs: opts.probeTimeoutMs } : {}),
      },
    };
    progress(
      plan.actions.length === 0
        ? "nothing to change"
        : `${plan.actions.length} change(s): ${[...new Set(plan.actions.map((a) => a.kind))].join(", ")}`,
    );
    let notes: string[];
    try {
      notes = await applyActions(plan.actions, ctx);
    } catch (e) {
      if (opts.keepOnFailure) {
        progress(
          `failed; keeping what was made (--keep-on-failure). \`qnet down ${lab.name}\` removes it`,
        );
      } else {
        progress("failed; rolling back what this run made");
        const errors = await rollback(state.dir, runner, startSeq);
        for (const err of errors) progress(`rollback: ${err.message}`);
        // A first run rolled back cleanly leaves nothing: not even its state directory.
        if (startSeq === 0 && errors.length === 0)
          rmSync(state.dir, { recursive: true, force: true });
      }
      throw e;
    }
    for (const n of [...plan.notes, ...notes]) progress(n);
    const started = new Set(
      plan.actions.flatMap((a) =>
        a.kind === "vm" ? [(a.payload as { vm: { name: string } }).vm.name] : [],
      ),
    );
    return {
      lab: lab.name,
      stateDir: state.dir,
      netns,
      changes: plan.actions.map((a) => a.what),
      notes: [...plan.notes, ...notes],
      vms: opts.noVms
        ? []
        : lab.vms.map((v) => ({
            name: v.name,
            started: started.has(v.name),
            ready: true,
            boot: readBootRecord(state.dir, v.name),
          })),
      ...(timings ? { timings } : {}),
    };
  } finally {
    state.release();
  }
}
