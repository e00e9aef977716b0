// Child process for crash tests: runs the engine's namespace and link kinds for a lab given in QNET_CHILD_SPEC (inert without it).
import { readFileSync } from "node:fs";
import { reconcile } from "../../../src/engine/engine.js";
import { Journal } from "../../../src/host/journal.js";
import { ProcessRunner } from "../../../src/host/runner.js";
import { openLabState, saveLabRecord } from "../../../src/host/state.js";
import { compileTopology } from "../../../src/load/compile.js";
import type { Lab } from "../../../src/model/lab.js";
import { bigBridgeLab, HOST_KINDS } from "./big-lab.js";

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
  const res = await reconcile(
    {
      lab,
      stateDir: state.dir,
      runner: new ProcessRunner(spec.netns),
      journal: new Journal(state.dir),
      facts: { vhost: false, kvm: false },
      options: {},
      progress: () => {},
    },
    { only: HOST_KINDS },
  );
  state.release();
  process.stdout.write(
    `${JSON.stringify({ actions: res.plan.actions.length, changed: res.plan.actions.length > 0 })}\n`,
  );
}
