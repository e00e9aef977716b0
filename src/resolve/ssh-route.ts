// How the host reaches a VM's SSH server (port 22): its address, a user-network forward, or a bridge forward.
import type { Lab, Vm } from "../model/lab.js";

export type SshRouteResult =
  | { ok: true; hostName: string; port: number; via: string }
  | { ok: false; reason: string; hint: string };

/** The login of a VM: root on the built-in guest, the cloud-init user on disk and image VMs. */
export function sshLogin(vm: Vm): string | null {
  switch (vm.guest.kind) {
    case "builtin":
      return "root";
    case "disk":
    case "image":
      return vm.guest.sshUser;
    case "kernel":
      return null; // the user's own kernel and initrd: qnet does not know who logs in
  }
}

/** A forward's host address as a client dials it: a wildcard bind is reached on loopback. */
const dialAddr = (a: string) => (a === "0.0.0.0" ? "127.0.0.1" : a);

/**
 * The route `qnet ssh` and `qnet ssh-config` use, in this order of preference: the VM's address on a
 * `bridge` network where the host has an address (the gateway), or on a `bridged` network in bridge mode
 * (the address comes from `live`, the guest agent's report, as the LAN's DHCP hands it out); a `user`
 * network forward to port 22; a `bridge` network forward to this VM's port 22. Without one, the reason
 * and the forward to add. A lab in a namespace is reached from inside it (`ip netns exec`).
 */
export function sshRoute(
  lab: Lab,
  vm: Vm,
  live: ReadonlyMap<number, string> = new Map(),
): SshRouteResult {
  const nets = new Map(lab.networks.map((n) => [n.name, n]));
  for (const nic of vm.nics) {
    const net = nets.get(nic.network)!;
    if (net.type === "bridge" && net.gateway !== null && nic.ip !== null) {
      return { ok: true, hostName: nic.ip, port: 22, via: `address on network ${net.name}` };
    }
    const seen = live.get(nic.index);
    if (net.type === "bridged" && net.mode === "bridge" && seen !== undefined) {
      return { ok: true, hostName: seen, port: 22, via: `address on LAN network ${net.name}` };
    }
  }
  for (const nic of vm.nics) {
    const net = nets.get(nic.network)!;
    if (net.type !== "user") continue;
    const f = net.forwards.find((f) => f.proto === "tcp" && f.guestPort === 22);
    if (f) {
      return {
        ok: true,
        hostName: dialAddr(f.hostAddr),
        port: f.hostPort,
        via: `user network ${net.name} forward ${f.spec}`,
      };
    }
  }
  for (const net of lab.networks) {
    if (net.type !== "bridge") continue;
    const f = net.forwards.find((f) => f.proto === "tcp" && f.guestPort === 22 && f.vm === vm.name);
    if (f) {
      return {
        ok: true,
        hostName: dialAddr(f.hostAddr),
        port: f.hostPort,
        via: `network ${net.name} forward ${f.spec}`,
      };
    }
  }
  const user = vm.nics.map((n) => nets.get(n.network)!).find((n) => n.type === "user");
  const bridged = vm.nics.map((n) => nets.get(n.network)!).find((n) => n.type === "bridged");
  return {
    ok: false,
    reason: `the host has no route to VM ${vm.name}'s SSH port`,
    hint: user
      ? `add a forward to port 22 on network ${user.name}: forwards: ["tcp:2222:22"]`
      : bridged && bridged.type === "bridged" && bridged.mode === "macvtap"
        ? `network ${bridged.name} uses macvtap, which the host cannot reach; use mode: bridge or add a user network with forwards: ["tcp:2222:22"]`
        : bridged
          ? `VM ${vm.name} has no address on network ${bridged.name} yet (is it up, with its guest agent answering?)`
          : `give the VM a NIC on a bridge network with a gateway, or a user network with forwards: ["tcp:2222:22"]`,
  };
}
