// How the built-in guest configures each NIC: the `qnet.*` settings qnet passes on the kernel line at a
// cold boot, or to the guest's configure script after a restore from a template.
import { type GuestParams, guestCmdline, guestParams } from "../guest/init-script.js";
import type { Lab, Vm } from "../model/lab.js";

/**
 * DHCP where a DHCP server serves the network (qnet's dnsmasq on `bridge` networks with dhcp, the LAN's
 * router on `bridged` ones); a static address where qnet knows it and nobody serves DHCP, and on user
 * networks, where the address QEMU's DHCP would hand out is known in advance (no DHCP round trip at boot).
 * Only the first NIC with a gateway sets the default route.
 */
function settingsOf(lab: Lab, vm: Vm): GuestParams {
  const nets = new Map(lab.networks.map((n) => [n.name, n]));
  let dns: string | null = null;
  let routed = false;
  const nics = vm.nics.map((nic) => {
    const net = nets.get(nic.network)!;
    const dhcp = net.type === "bridged" || (net.type === "bridge" && net.dhcp);
    if (net.type === "user") dns ??= net.dns;
    const gateway = nic.gateway && !routed ? nic.gateway : null;
    if (gateway) routed = true;
    // A network spanning hosts carries less than Ethernet's 1500 (VXLAN takes 50): the NIC is told.
    const mtu = net.type === "bridge" && net.span ? net.span.mtu : null;
    return { mac: nic.mac, ip: nic.ip, prefix: nic.prefix, gateway, dhcp, ...(mtu ? { mtu } : {}) };
  });
  return { hostname: vm.name, nics, dns };
}

/** The kernel command line of a VM of the built-in guest. */
export function builtinAppend(lab: Lab, vm: Vm): string {
  return guestCmdline(settingsOf(lab, vm));
}

/** The same settings as words for the guest's configure script (a VM restored from a template). */
export function builtinParams(lab: Lab, vm: Vm): string[] {
  return guestParams(settingsOf(lab, vm));
}
