// Live impairments (`qnet impair`): per NIC, what replaces the topology's impairment until the lab goes
// down or the NIC is reset. Kept in the lab's state directory, so plan, status, check and a later `up`
// all see the impairments in force and never fight over them. Pure.
import { type Impairment, isEmpty, sortKeys } from "./impair.js";
import type { Lab } from "./lab.js";

export interface LiveImpairments {
  /** "vm:nicIndex" → the impairment in force ({}: none, cleared by hand). Absent: the topology's. */
  nics: Record<string, Impairment>;
}

export const nicKey = (vm: string, nic: number) => `${vm}:${nic}`;

/** The lab with live impairments in place of the topology's. */
export function withLiveImpairments(lab: Lab, live: LiveImpairments | null): Lab {
  if (!live || Object.keys(live.nics).length === 0) return lab;
  return {
    ...lab,
    vms: lab.vms.map((vm) => ({
      ...vm,
      nics: vm.nics.map((n) => {
        const key = nicKey(vm.name, n.index);
        if (!Object.hasOwn(live.nics, key)) return n;
        const { impair: _, ...rest } = n;
        const i = live.nics[key]!;
        return isEmpty(i) ? rest : { ...rest, impair: sortKeys(i) };
      }),
    })),
  };
}
