// What every executor works with: the lab, where its state lives, how to run commands, the journal,
// and the observation the plan was made from.
import type { Observation } from "../facts/types.js";
import type { Journal } from "../host/journal.js";
import type { Runner } from "../host/runner.js";
import type { UplinkOptions } from "../host/uplink.js";
import type { HostFacts, Lab } from "../model/lab.js";

export interface ExecOptions extends UplinkOptions {
  /** Seconds to wait for every guest agent of the VMs started (default 120). */
  waitSeconds?: number;
}

export interface ExecContext {
  lab: Lab;
  /** The lab's state directory (0700), e.g. /run/qnet/<lab>. */
  stateDir: string;
  /** Runs commands inside the lab's network namespace (if any). */
  runner: Runner;
  journal: Journal;
  /** KVM and vhost-net, for the VMs' command lines. */
  facts: HostFacts;
  /** The observation the plan being applied was made from. */
  obs: Observation;
  options: ExecOptions;
  /** Progress lines for people (stderr); silent under --json. */
  progress: (msg: string) => void;
  /** Each phase's duration, in the order run (`up --timings`). */
  timings?: Timing[];
}

export interface Timing {
  phase: string;
  ms: number;
}

/** Run `fn`, adding its duration to `timings` under `phase`. */
export async function timed<T>(
  timings: Timing[] | undefined,
  phase: string,
  fn: () => Promise<T>,
): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    timings?.push({ phase, ms: Math.round(performance.now() - t0) });
  }
}
