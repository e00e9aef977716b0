// The lab's VMs: QEMU started when not running, restarted when the tap it holds was made anew, resumed
// when paused. Readiness (the guest agent answers) is part of starting.
import { type HostLink, processKey } from "../facts/types.js";
import type { Vm } from "../model/lab.js";
import { vmFiles } from "../model/paths.js";
import { qemuNameArg } from "../render/qemu-args.js";
import { templateIneligible } from "../render/template.js";
import { linksByName } from "./links.js";
import { tapRecreateReason, tapsOf, type WantTap } from "./tap.js";
import { ABSENT, type Kind, verdict } from "./types.js";

export interface WantVm {
  vm: Vm;
  pidfile: string;
  /** The one argv element that proves a PID is this lab's VM (`-name …,process=qnet:<lab>:<vm>`). */
  match: string;
  qmp: string;
  taps: WantTap[];
  /** macvtaps of its NICs (QEMU holds their /dev/tapN files). */
  macvtaps: string[];
}

export interface VmPayload {
  vm: Vm;
  mode: "start" | "restart" | "resume";
  pid: number | null;
  /** Why it boots cold; null: it starts from a template (falling back to a cold boot if that fails). */
  cold: string | null;
}

/** Why a running VM no longer holds the tap the lab gives it, or null. */
function detachedReason(w: WantVm, links: Map<string, HostLink>): string | null {
  for (const t of w.taps) {
    const l = links.get(t.name);
    if (!l || tapRecreateReason(l, t))
      return `its tap ${t.name} is made anew in this run, and QEMU holds the old one`;
    // A tap that QEMU holds has carrier: none means the process attached to it is gone.
    if (l.up && l.noCarrier) return `its tap ${t.name} is not attached to its QEMU`;
  }
  for (const m of w.macvtaps)
    if (!links.has(m))
      return `its macvtap ${m} is made anew in this run, and QEMU holds the old one`;
  return null;
}

export const vmKind: Kind<WantVm> = {
  name: "vm",
  desired(env) {
    if (!env.vms) return [];
    const taps = tapsOf(env.lab);
    const macvtapNets = new Set(
      env.lab.networks.flatMap((n) =>
        n.type === "bridged" && n.mode === "macvtap" ? [n.name] : [],
      ),
    );
    return env.lab.vms.map((vm) => {
      const f = vmFiles(env.stateDir, vm.name);
      return {
        vm,
        pidfile: f.pidfile,
        match: qemuNameArg(env.lab.name, vm.name),
        qmp: f.qmp,
        taps: taps.filter((t) => t.vm === vm.name),
        macvtaps: vm.nics.flatMap((n) => (macvtapNets.has(n.network) && n.tap ? [n.tap] : [])),
      };
    });
  },
  observe: (want) => ({
    links: want.some((w) => w.taps.length + w.macvtaps.length > 0),
    processes: want.map((w) => ({ pidfile: w.pidfile, match: w.match })),
    qmp: want.map((w) => ({
      vm: w.vm.name,
      socket: w.qmp,
      key: { pidfile: w.pidfile, match: w.match },
    })),
  }),
  diff(want, obs, env) {
    const links = linksByName(obs);
    return {
      verdicts: want.map((w) => {
        const pid = obs.processes.get(processKey(w)) ?? null;
        const run = obs.vmStates.get(w.vm.name);
        const cold = templateIneligible(env.lab, w.vm, env.cold);
        const how = cold === null ? " (from a template)" : "";
        const act = (mode: VmPayload["mode"], what: string, reason: string) => ({
          kind: "vm" as const,
          what: mode === "resume" ? what : `${what}${how}`,
          reason,
          undo:
            mode === "resume"
              ? null
              : { kind: "process" as const, pidfile: w.pidfile, match: w.match, qmp: w.qmp },
          payload: { vm: w.vm, mode, pid, cold } satisfies VmPayload,
        });
        if (pid === null)
          return verdict(
            "vm",
            w.vm.name,
            "",
            [act("start", `start VM ${w.vm.name}`, `${ABSENT}: no QEMU process`)],
            "missing",
          );
        const detached = detachedReason(w, links);
        const actions = detached
          ? [act("restart", `restart VM ${w.vm.name}`, detached)]
          : run === "paused"
            ? [act("resume", `resume VM ${w.vm.name}`, "QEMU is paused")]
            : [];
        return verdict(
          "vm",
          w.vm.name,
          `running (pid ${pid})${run ? `: QEMU ${run}` : ""}`,
          actions,
        );
      }),
    };
  },
};
