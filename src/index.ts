// qnet as a library: compile a topology, plan it, bring a lab up and down, inspect and check it.

export { type DoctorReport, renderDoctorTable, runDoctor } from "./doctor/index.js";
export {
  CommandError,
  type Diagnostic,
  EXIT,
  formatDiagnostic,
  UserError,
  ValidationError,
} from "./errors.js";
export { buildGuest } from "./guest/build.js";
export { detectFacts } from "./host/facts.js";
export { DEFAULT_STATE_ROOT, labStateDir } from "./host/state.js";
export { execInVm } from "./lab/access.js";
export { checkLab } from "./lab/check.js";
export { type DownResult, down } from "./lab/down.js";
export { type PlanView, planView, renderPlanText } from "./lab/plan-view.js";
export { type FullStatus, fullStatus } from "./lab/status.js";
export { type UpOptions, type UpResult, up } from "./lab/up.js";
export { type Compiled, compileTopology } from "./load/compile.js";
export { topologyJsonSchema } from "./model/json-schema.js";
export type { Forward, HostFacts, Lab, Network, Nic, Vm } from "./model/lab.js";
export { renderAscii, renderDot, renderMermaid } from "./render/diagram.js";
export { networkArgs, vmArgv } from "./render/qemu-args.js";
