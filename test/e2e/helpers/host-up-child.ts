// Child process for crash tests: runs the host engine's `up` for a lab given in QNET_CHILD_SPEC (inert without it).
import { readFileSync } from "node:fs";
import { applyHostNetwork } from "../../../src/host/apply.js";
import { Journal } from "../../../src/host/journal.js";
import { ProcessRunner } from "../../../src/host/runner.js";
import { openLabState, saveLabRecord } from "../../../src/host/state.js";
import { compileTopology } from "../../../src/load/compile.js";
import type { Lab } from "../../../src/model/lab.js";
import { bigBridgeLab } from "./big-lab.js";

interface Spec {
  stateRoot: string;
  netns: string;
  /** An example file path, or a generated lab of this many taps. */
  file?: string;
  taps?: number;
  name?: string;
}

const raw = process.env.QNET_CHILD_SPEC;
if (raw) {
  const spec = JSON.parse(raw) as Spec;
  const lab: Lab = spec.file
    ? { ...compileTopology(readFileSync(spec.file, "utf8"), spec.file).lab, netns: spec.netns }
    : bigBridgeLab(spec.name ?? "big", spec.taps ?? 10, spec.netns);
  const state = await openLabState({ stateRoot: spec.stateRoot, lab: lab.name });
  saveLabRecord(state.dir, lab, { netns: spec.netns });
  const res = await applyHostNetwork({
    lab,
    stateDir: state.dir,
    runner: new ProcessRunner(spec.netns),
    journal: new Journal(state.dir),
    facts: { vhost: false, kvm: false },
    progress: () => {},
  });
  state.release();
  process.stdout.write(
    `${JSON.stringify({ actions: res.actions.length, changed: res.changed })}\n`,
  );
}
