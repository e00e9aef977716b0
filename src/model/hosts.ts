// Multi-host labs: the hosts, and how a private network spans them with kernel VXLAN (types only).

/** One host of a multi-host lab. */
export interface LabHost {
  name: string;
  /** The IPv4 address the other hosts reach it on (the underlay). */
  address: string;
  /** The underlay's MTU on this host (default 1500). */
  mtu: number;
}

/** VXLAN's headers on an IPv4 underlay: outer IPv4 20, UDP 8, VXLAN 8, inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;
/** The IANA port of VXLAN, always written explicitly: Linux's own default is the pre-IANA 8472. */
export const VXLAN_PORT = 4789;
/**
 * Ports one bridge can have: the kernel numbers them below BR_MAX_PORTS (1024, net/bridge/br_private.h)
 * and never uses port 0, so the 1024th `ip link set … master` fails with "Exchange full" (EXFULL).
 */
export const BRIDGE_MAX_PORTS = 1023;

/** How a `bridge` network spans several hosts: one VXLAN device per host, head-end replication. */
export interface Span {
  /** The hosts the network is on, in the file's order of hosts: every one gets its bridge and a VTEP. */
  hosts: string[];
  /** The VXLAN network identifier (24 bits, never 0). */
  vni: number;
  /** The VXLAN device's name on every host (`qnvx-<8 hex>`). */
  device: string;
  /** The overlay's MTU: the smallest underlay MTU of its hosts minus VXLAN's 50 bytes. */
  mtu: number;
}
