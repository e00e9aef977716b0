// Prerequisites of bridges and taps: the bridge and tun kernel modules, and the br_netfilter settings.
import { existsSync } from "node:fs";
import type { Lab } from "../model/lab.js";
import { desiredHost } from "../plan/host-plan.js";
import type { Runner } from "./runner.js";

export interface PrereqReport {
  /** Modules `modprobe` loaded (or found loaded). */
  modules: string[];
  /** Notes for people: a module that could not be loaded but whose feature is there, ... */
  notes: string[];
}

/** Per-bridge options the engine sets on qnet's own bridges (never host-wide sysctls). */
export const BRIDGE_NETFILTER_OPTIONS = [
  "nf_call_iptables 0",
  "nf_call_ip6tables 0",
  "nf_call_arptables 0",
];

/** People-readable lines saying which br_netfilter options are set on which of the lab's bridges. */
export function bridgeNetfilterReport(lab: Lab): string[] {
  return desiredHost(lab).bridges.map(
    (b) =>
      `bridge ${b.name}: ${BRIDGE_NETFILTER_OPTIONS.join(", ")} (bridged traffic bypasses iptables/ip6tables/arptables; host-wide sysctls untouched)`,
  );
}

/** Whether a feature is present without loading anything (built in, or module already loaded). */
function featurePresent(module: "bridge" | "tun"): boolean {
  if (existsSync(`/sys/module/${module}`)) return true;
  return module === "tun" && existsSync("/dev/net/tun") && existsSync("/sys/class/misc/tun");
}

/**
 * Load `bridge` and `tun` when the lab needs them. A failing modprobe is tolerated when the feature is
 * already there (built into the kernel, no /lib/modules tree); otherwise it is reported in `notes` and
 * the first `ip` command that needs it will fail with the kernel's own message.
 */
export async function ensureKernelFeatures(runner: Runner, lab: Lab): Promise<PrereqReport> {
  const want = desiredHost(lab);
  const needed: ("bridge" | "tun")[] = [];
  if (want.bridges.length > 0) needed.push("bridge");
  if (want.taps.length > 0) needed.push("tun");
  const report: PrereqReport = { modules: [], notes: [] };
  for (const m of needed) {
    if (featurePresent(m)) {
      report.modules.push(m);
      continue;
    }
    const r = await runner.run(["modprobe", m], { allowFail: true, hostNamespace: true });
    if (r.exitCode === 0 || featurePresent(m)) report.modules.push(m);
    else
      report.notes.push(
        `modprobe ${m} failed (${r.stderr.trim() || `exit ${r.exitCode}`}); continuing in case it is built in`,
      );
  }
  return report;
}
