// What `qnet up` would change on this host, for `qnet plan`: the link diff against the observed host,
// the LAN uplink moves, and the services each network gets.

import type { HostSnapshot } from "../host/iproute2.js";
import type { Lab } from "../model/lab.js";
import { planHostNetwork } from "../plan/host-plan.js";
import { planBridged } from "../plan/uplink-plan.js";
import { wantsDnsmasq } from "../render/dnsmasq-conf.js";
import { natNeeds, nftTable, renderNftRuleset } from "../render/nftables.js";
import type { PlannedChange } from "./plan-view.js";

export function plannedChanges(
  lab: Lab,
  snapshot: HostSnapshot,
): { changes: PlannedChange[]; notes: string[] } {
  const changes: PlannedChange[] = planHostNetwork(lab, snapshot).map((a) => ({
    what: a.what,
    reason: a.reason === "absent" ? "it does not exist yet" : a.reason,
  }));
  const notes: string[] = [];
  for (const b of planBridged(lab)) {
    for (const what of b.actions)
      changes.push({ what, reason: `network ${b.network} puts VMs on the LAN (${b.mode})` });
    notes.push(...b.notes);
  }
  for (const net of lab.networks) {
    if (net.type === "bridge" && wantsDnsmasq(net)) {
      changes.push({
        what: `run dnsmasq on ${net.bridge} (DHCP with a fixed lease per VM NIC, DNS for ${lab.name})`,
        reason: `network ${net.name} has dhcp on`,
      });
    }
  }
  if (renderNftRuleset(lab, { defaultUplink: null }) !== null) {
    const t = nftTable(lab.name);
    changes.push({
      what: `nftables table ${t.family} ${t.table} (NAT and port forwards)`,
      reason: "a network has nat or forwards",
    });
    const needs = natNeeds(lab);
    if (needs.ipForward)
      changes.push({
        what: "net.ipv4.ip_forward=1 if off (restored on down)",
        reason: "NAT and forwards route through the host",
      });
    for (const br of needs.routeLocalnet) {
      changes.push({
        what: `net.ipv4.conf.${br}.route_localnet=1 (restored on down)`,
        reason: "forwards bound to 127.0.0.1 are DNATed to a VM",
      });
    }
    changes.push({
      what: "accept rules for the lab's bridges in a FORWARD chain that drops, if any (Docker's DOCKER-USER first)",
      reason: "a host firewall with a FORWARD drop policy would drop the lab's routed traffic",
    });
  }
  return { changes, notes };
}
