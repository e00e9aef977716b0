// One host's part of a multi-host lab: the same Lab, filtered to what that host runs. Every command
// (plan, up, status, down, check) works on a part exactly as on a single-host lab: no second code path.
import type { Lab, Network, Vm } from "../model/lab.js";
import { networkHosts } from "./hosts.js";

/**
 * The part of `lab` that `host` runs: its VMs; the networks it is on, where a private network whose home
 * is another host keeps its segment (subnet, DHCP served from the home) but carries no gateway address,
 * NAT, forwards or names here. The VMs of the other hosts stay as `part.remoteVms`: the home's DHCP
 * leases, DNS names and forwards cover them.
 */
export function labPart(lab: Lab, host: string): Lab {
  if (!lab.hosts?.some((h) => h.name === host))
    throw new Error(`internal: host ${JSON.stringify(host)} is not one of the lab's hosts`);
  const networks = lab.networks
    .filter((n) => networkHosts(lab, n).includes(host))
    .map((n): Network => {
      if (n.type !== "bridge" || n.home === host) return n;
      return { ...n, gateway: null, nat: false, uplink: null, dnsHost: false, forwards: [] };
    });
  return {
    ...lab,
    networks,
    vms: lab.vms.filter((v) => v.host === host),
    part: { host, remoteVms: lab.vms.filter((v) => v.host !== host) },
  };
}

/** Every VM of the lab, also those a part runs on other hosts, sorted by name. */
export function allVms(lab: Lab): Vm[] {
  if (!lab.part) return lab.vms;
  return [...lab.vms, ...lab.part.remoteVms].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
}

/** The underlay address of a lab's host. */
export function hostAddress(lab: Lab, host: string): string {
  const h = lab.hosts?.find((x) => x.name === host);
  if (!h) throw new Error(`internal: no host ${JSON.stringify(host)} in lab ${lab.name}`);
  return h.address;
}
