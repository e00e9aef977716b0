// The network-services phase of `up`: sysctls, the lab's nftables table, firewall accepts, dnsmasq,
// and the hosts-file block of `dns: host` networks.
import type { LabContext } from "./context.js";
import { applyDnsmasq } from "./dnsmasq.js";
import { applyFirewall } from "./firewall.js";
import { applyHostsFile } from "./hosts-file.js";
import { applyNftTable, applySysctls, type PhaseResult } from "./nat.js";

/**
 * Bring the lab's DHCP/DNS, NAT, forwards and firewall accepts in line with the lab. Runs after the
 * bridges exist (dnsmasq and route_localnet need them). Idempotent: a second run changes nothing.
 */
export async function applyServices(ctx: LabContext): Promise<PhaseResult> {
  const notes: string[] = [];
  let changed = false;
  for (const phase of [applySysctls, applyNftTable, applyFirewall, applyDnsmasq, applyHostsFile]) {
    const r = await phase(ctx);
    changed ||= r.changed;
    notes.push(...r.notes);
  }
  for (const n of notes) ctx.progress(n);
  return { changed, notes };
}
