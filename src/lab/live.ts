// The live state of a running lab: which VMs run and the addresses their NICs hold (asked of the agents).
import { GuestAgent, type GuestInterface } from "../host/guest-agent.js";
import { type VmState, vmStatus } from "../host/vm.js";
import type { Lab, Vm } from "../model/lab.js";
import type { LiveState } from "../render/diagram.js";
import { vmFiles } from "./paths.js";

/** The IPv4 addresses one NIC of a VM holds, as its guest agent reports them. */
export interface LiveNic {
  index: number;
  network: string;
  mac: string;
  /** The guest interface with this NIC's MAC, or null when the guest has none. */
  ifname: string | null;
  /** "a.b.c.d/prefix" strings. */
  ipv4: string[];
}

export interface LiveVm {
  name: string;
  state: VmState;
  pid: number | null;
  /** Why the VM is not running, or what QEMU says. */
  detail: string;
  /** Per NIC; null when the VM is not running or its agent did not answer. */
  nics: LiveNic[] | null;
  /** Why `nics` is null (agent error), when the VM runs. */
  agentError: string | null;
}

export interface LiveLab {
  vms: LiveVm[];
}

/** Match the guest's interfaces to the VM's NICs by MAC (pure). */
export function matchLiveNics(vm: Vm, ifaces: GuestInterface[]): LiveNic[] {
  return vm.nics.map((nic) => {
    const i = ifaces.find((x) => x.mac === nic.mac.toLowerCase());
    return {
      index: nic.index,
      network: nic.network,
      mac: nic.mac,
      ifname: i?.name ?? null,
      ipv4: (i?.addresses ?? [])
        .filter((a) => a.family === "ipv4")
        .map((a) => `${a.ip}/${a.prefix}`),
    };
  });
}

async function agentNics(stateDir: string, vm: Vm, timeoutMs: number): Promise<LiveNic[]> {
  const agent = await GuestAgent.connect(vmFiles(stateDir, vm.name).qga, {
    timeoutMs,
    syncTimeoutMs: Math.min(1_000, timeoutMs),
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const ifaces = await Promise.race([
      agent.networkInterfaces(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return matchLiveNics(vm, ifaces);
  } finally {
    clearTimeout(timer);
    agent.close();
  }
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
      try {
        out.nics = await agentNics(stateDir, vm, timeoutMs);
      } catch (e) {
        out.agentError = (e as Error).message.split("\n")[0] ?? "agent error";
      }
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
