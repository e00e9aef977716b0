// The live state of a running lab: which VMs run and the addresses their NICs hold (asked of the agents).
import { type VmState, vmStatus } from "../host/vm.js";
import type { Lab } from "../model/lab.js";
import type { LiveState } from "../render/diagram.js";
import { type NicAddresses, vmAddresses } from "./vm-addresses.js";

export interface LiveVm {
  name: string;
  state: VmState;
  pid: number | null;
  /** Why the VM is not running, or what QEMU says. */
  detail: string;
  /** Per NIC; null when the VM is not running or its agent did not answer. */
  nics: NicAddresses[] | null;
  /** Why `nics` is null (agent error), when the VM runs. */
  agentError: string | null;
}

export interface LiveLab {
  vms: LiveVm[];
}

/** Every VM's state and addresses, asked in parallel; a silent agent is recorded, never thrown. */
export async function readLiveLab(
  stateDir: string,
  lab: Lab,
  opts: { agentTimeoutMs?: number } = {},
): Promise<LiveLab> {
  const timeoutMs = opts.agentTimeoutMs ?? 4_000;
  const vms = await Promise.all(
    lab.vms.map(async (vm): Promise<LiveVm> => {
      const s = await vmStatus(stateDir, lab.name, vm.name);
      const out: LiveVm = {
        name: vm.name,
        state: s.state,
        pid: s.pid,
        detail: s.detail,
        nics: null,
        agentError: null,
      };
      if (s.state !== "running") return out;
      const a = await vmAddresses(stateDir, vm, timeoutMs);
      if (a.ok) out.nics = a.nics;
      else out.agentError = a.reason;
      return out;
    }),
  );
  return { vms };
}

/** The diagram's view of the live state: up/down and the IPv4 addresses each VM's NICs hold (pure). */
export function toDiagramState(live: LiveLab): LiveState {
  const vms: LiveState["vms"] = {};
  for (const v of live.vms) {
    vms[v.name] = {
      running: v.state === "running",
      addresses: [...new Set((v.nics ?? []).flatMap((n) => n.ipv4))],
    };
  }
  return { vms };
}
