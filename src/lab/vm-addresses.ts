// The addresses each running VM's NICs hold, asked of its guest agent (short timeouts, never throws).
import { GuestAgent, type GuestInterface } from "../host/guest-agent.js";
import type { Vm } from "../model/lab.js";
import { vmFiles } from "../model/paths.js";

export interface NicAddresses {
  /** NIC index in the topology. */
  nic: number;
  network: string;
  mac: string;
  /** The guest's interface with this MAC; null when the guest has none. */
  ifname: string | null;
  /** IPv4 addresses as "a.b.c.d/prefix". */
  ipv4: string[];
}

export type VmAddresses = { ok: true; nics: NicAddresses[] } | { ok: false; reason: string };

/** Match the guest's interfaces to the lab's NICs by MAC and keep their IPv4 addresses. */
export function matchNics(vm: Vm, ifaces: GuestInterface[]): NicAddresses[] {
  return vm.nics.map((nic) => {
    const i = ifaces.find((x) => x.mac === nic.mac.toLowerCase());
    return {
      nic: nic.index,
      network: nic.network,
      mac: nic.mac,
      ifname: i?.name ?? null,
      ipv4: (i?.addresses ?? [])
        .filter((a) => a.family === "ipv4")
        .map((a) => `${a.ip}/${a.prefix}`),
    };
  });
}

/**
 * Ask the agent of a running VM for its interfaces, within `timeoutMs` in total (connect, sync and the
 * query). A slow, busy or absent agent gives `{ ok: false }` with the reason, never an exception.
 */
export async function vmAddresses(
  stateDir: string,
  vm: Vm,
  timeoutMs = 2_500,
): Promise<VmAddresses> {
  const deadline = Date.now() + timeoutMs;
  let agent: GuestAgent | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    agent = await GuestAgent.connect(vmFiles(stateDir, vm.name).qga, {
      timeoutMs,
      syncTimeoutMs: Math.min(1_000, timeoutMs),
    });
    const a = agent;
    const ifaces = await Promise.race([
      a.networkInterfaces(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${timeoutMs} ms`)),
          Math.max(0, deadline - Date.now()),
        );
      }),
    ]);
    return { ok: true, nics: matchNics(vm, ifaces) };
  } catch (e) {
    return { ok: false, reason: `agent not answering (${(e as Error).message})` };
  } finally {
    clearTimeout(timer);
    agent?.close();
  }
}

/** "lan 192.168.50.101/24, wan none" for a status line. */
export function describeAddresses(nics: NicAddresses[]): string {
  return nics.map((n) => `${n.network} ${n.ipv4.length ? n.ipv4.join(" ") : "no IPv4"}`).join(", ");
}
