// `qnet doctor`: run every host check for an optional lab and return one report (the CLI prints it).

import type { Runner } from "../host/runner.js";
import type { Lab } from "../model/lab.js";
import { checkModules, checkNfCall, checkPersistentFix } from "./bridge-filter.js";
import { checkBridgeHelper } from "./bridge-helper.js";
import { checkDevices } from "./devices.js";
import { checkForwardPolicy } from "./forward-policy.js";
import { checkIpForward } from "./ip-forward.js";
import { checkNetworkManager } from "./network-manager.js";
import { checkPorts } from "./ports.js";
import { checkPrograms } from "./programs.js";
import { checkQemu } from "./qemu.js";
import { checkRootless } from "./rootless.js";
import { checkRoutes } from "./routes.js";
import {
  type Check,
  type CheckResult,
  DEFAULT_ENV,
  type DoctorContext,
  type DoctorEnv,
  type DoctorReport,
} from "./types.js";
import { checkUplinks } from "./uplink.js";

export { exitCodeFor, renderDoctorTable, summarize } from "./render.js";
export type { CheckResult, CheckStatus, DoctorEnv, DoctorReport } from "./types.js";
export { DEFAULT_ENV } from "./types.js";

export interface DoctorOptions {
  lab?: Lab;
  /** Runs probes; its netns is the namespace diagnosed (`--netns`, or the lab's). */
  runner: Runner;
  /**
   * Apply the safe fixes (bridge-nf-call off, the persistent sysctl.d file and udev rule), and install
   * missing packages if `confirm` agrees.
   */
  fix?: boolean;
  /** Asked once before installing packages (default: no). */
  confirm?: (question: string) => Promise<boolean>;
  env?: Partial<DoctorEnv>;
}

/** Every check, in report order. */
export const CHECKS: readonly { name: string; run: Check }[] = [
  { name: "programs", run: checkPrograms },
  { name: "devices", run: checkDevices },
  { name: "modules", run: checkModules },
  { name: "bridge-nf-call", run: checkNfCall },
  { name: "bridge-nf-call.persistent", run: checkPersistentFix },
  { name: "ip-forward", run: checkIpForward },
  { name: "forward-policy", run: checkForwardPolicy },
  { name: "bridge-helper", run: checkBridgeHelper },
  { name: "qemu", run: checkQemu },
  { name: "ports", run: checkPorts },
  { name: "routes", run: checkRoutes },
  { name: "uplink", run: checkUplinks },
  { name: "network-manager", run: checkNetworkManager },
  { name: "rootless", run: checkRootless },
];

export async function runDoctor(opts: DoctorOptions): Promise<DoctorReport> {
  const ctx: DoctorContext = {
    lab: opts.lab ?? null,
    runner: opts.runner,
    fix: opts.fix ?? false,
    confirm: opts.confirm ?? (async () => false),
    env: { ...DEFAULT_ENV, ...opts.env },
  };
  const checks: CheckResult[] = [];
  for (const c of CHECKS) {
    try {
      checks.push(...(await c.run(ctx)));
    } catch (e) {
      // One broken check must not hide the others: report it and go on.
      checks.push({
        id: c.name,
        title: c.name,
        status: "warn",
        detail: `The check itself failed: ${(e as Error).message.split("\n")[0]}.`,
      });
    }
  }
  return { checks };
}
