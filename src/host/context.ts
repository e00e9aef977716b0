// What every phase of `up` and `down` works with: the lab, where its state lives, how to run commands.
import type { HostFacts, Lab } from "../model/lab.js";
import type { Journal } from "./journal.js";
import type { Runner } from "./runner.js";

export interface LabContext {
  lab: Lab;
  /** The lab's state directory (0700), e.g. /run/qnet/<lab>. */
  stateDir: string;
  /** Runs commands inside the lab's network namespace (if any). */
  runner: Runner;
  journal: Journal;
  facts: HostFacts;
  /** Progress lines for people (stderr); silent under --json. */
  progress: (msg: string) => void;
}

export { ownerMark } from "../model/lab.js";
