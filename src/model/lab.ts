// The resolved lab: every default filled, every derived value (MACs, IPs, interface names) fixed.
// Everything downstream (planning, rendering, host adapters) works from this, never from the raw file.
import type { LabHost, Span } from "./hosts.js";

import type { ImageRef } from "./images.js";
import type { Impairment } from "./impair.js";

export type Proto = "tcp" | "udp";

/** A host port forwarded into a guest. `vm` is set for bridge networks (the target VM). */
export interface Forward {
  proto: Proto;
  /** Host address the forward binds; 127.0.0.1 unless the file names one. */
  hostAddr: string;
  hostPort: number;
  guestPort: number;
  /** Target VM (bridge networks only; user-network forwards apply to every VM on the network). */
  vm?: string;
  /** The forward as written in the file, for messages. */
  spec: string;
}

export interface UserNetwork {
  type: "user";
  name: string;
  subnet: string;
  prefix: number;
  /** QEMU's gateway address (the second address of the subnet, .2 in 10.0.2.0/24). */
  hostAddr: string;
  dns: string;
  dhcpStart: string;
  restrict: boolean;
  forwards: Forward[];
  /** Multi-host labs: the host whose VMs use it. */
  home?: string;
}

export interface BridgeNetwork {
  type: "bridge";
  name: string;
  bridge: string;
  subnet: string;
  prefix: number;
  /** The host's address on the bridge, or null for a pure L2 network. */
  gateway: string | null;
  dhcp: boolean;
  nat: boolean;
  /** Interface NAT leaves by; null: the default route's. */
  uplink: string | null;
  dnsHost: boolean;
  forwards: Forward[];
  /** Multi-host labs: the host with the gateway address, DHCP/DNS, NAT and forwards. */
  home?: string;
  /** Multi-host labs: set when the network is on more than one host. */
  span?: Span;
}

export interface BridgedNetwork {
  type: "bridged";
  name: string;
  bridge: string;
  uplink: string;
  mode: "bridge" | "macvtap";
  backend: "nmcli" | "iproute2" | null;
  probe: string | null;
  /** Multi-host labs: the host of the uplink. */
  home?: string;
}

export type Network = UserNetwork | BridgeNetwork | BridgedNetwork;

export interface Nic {
  index: number;
  network: string;
  networkType: Network["type"];
  model: string;
  mac: string;
  /** Planned IPv4 address: fixed or allocated on bridge networks, QEMU's DHCP address on user networks, null on bridged. */
  ip: string | null;
  prefix: number | null;
  gateway: string | null;
  /** QEMU netdev id. */
  netdevId: string;
  /** Host tap (bridge and bridged networks), null for user networks. */
  tap: string | null;
  /** Impairments of the frames to and from this NIC (its own over its network's); absent: none. */
  impair?: Impairment;
}

export type Guest =
  | { kind: "builtin" }
  | { kind: "kernel"; kernel: string; initrd: string | null; append: string | null }
  | { kind: "disk"; disk: string; sshKey: string | null; sshUser: string }
  | {
      kind: "image";
      image: ImageRef;
      sshKey: string | null;
      /** The login cloud-init creates (`sshUser`, default "qnet"). */
      sshUser: string;
      /** Keep the VM's overlay on `down`. */
      persist: boolean;
    };

export interface Vm {
  name: string;
  nics: Nic[];
  guest: Guest;
  memory: number;
  cpus: number;
  /** Owner of the VM's taps (VM `user`, else lab `user`), or null: root. */
  user: string | null;
  qemu: { binary: string; machine: string; args: string[] };
  /** Multi-host labs: the host that runs it. */
  host?: string;
}

export interface Lab {
  name: string;
  netns: string | null;
  /**
   * How VMs start: `instant` restores the built-in guest from a booted template where the VM's layout
   * allows it (a cold boot otherwise); `cold` always boots.
   */
  boot: "instant" | "cold";
  /** The lab's login key as the file gives it (a public key line or a private key's path), or null. */
  sshKey: string | null;
  /** Networks and VMs in a deterministic order (sorted by name). */
  networks: Network[];
  vms: Vm[];
  /** Multi-host labs: every host, in the file's order. */
  hosts?: LabHost[];
  /**
   * One host's part of a multi-host lab (see resolve/part.ts): the host it is, and the lab's VMs that
   * run on the other hosts (`vms` holds this host's only), for the home's leases, names and forwards.
   */
  part?: { host: string; remoteVms: Vm[] };
}

/** Facts about the machine that runs the VMs, passed into the pure renderers (never read by them). */
export interface HostFacts {
  /** /dev/vhost-net is usable. */
  vhost: boolean;
  /** /dev/kvm is usable. */
  kvm: boolean;
}
