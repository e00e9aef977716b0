// The topology file's shape: one zod schema, the source of both validation and the published JSON Schema.
import { z } from "zod";
import {
  IFNAME_RE,
  IFNAME_RULE,
  NAME_RE,
  NAME_RULE,
  NETNS_RE,
  NETNS_RULE,
  USER_RE,
} from "./names.js";

const name = (what: string) =>
  z.string().regex(NAME_RE, {
    message: `${what} must be ${NAME_RULE}`,
  });

const ifname = z.string().regex(IFNAME_RE, { message: IFNAME_RULE });

/** A QEMU NIC model: a device name QEMU knows; restricted so it can never inject options. */
const nicModel = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, {
  message: "a NIC model is a QEMU device name such as virtio-net-pci or e1000",
});

const forward = z.string().describe("[proto:][hostaddr:]hostport:guestport");

/** Link impairments: values with units, checked by the rules (src/model/impair.ts). */
const impairValue = z.union([z.string(), z.number()]);
export const ImpairSchema = z
  .strictObject({
    delay: impairValue.optional().describe("one-way delay in each direction: 40ms, 1.5s, 500us"),
    jitter: impairValue.optional().describe("random variation of the delay: 5ms"),
    loss: impairValue.optional().describe("frames dropped in each direction: 1%"),
    rate: impairValue.optional().describe("bandwidth in each direction: 10mbit, 512kbit"),
    duplicate: impairValue.optional().describe("frames sent twice: 1%"),
    corrupt: impairValue.optional().describe("frames with a flipped bit: 0.1%"),
    reorder: impairValue.optional().describe("frames sent at once while the rest wait: 25%"),
  })
  .describe("impairments of the frames to and from a NIC (netem and tbf on its tap)");
const bridgeForward = z.string().describe("[proto:][hostaddr:]hostport:vm:guestport");

export const UserNetworkSchema = z
  .strictObject({
    type: z.literal("user"),
    subnet: z.string().optional().describe("guest network, default 10.0.2.0/24"),
    forwards: z
      .array(forward)
      .optional()
      .describe("host ports forwarded into each VM on this network"),
    restrict: z.boolean().optional().describe("isolate the guest from the host and outside"),
    dns: z.string().optional().describe("address of QEMU's built-in DNS server inside the subnet"),
    dhcpStart: z.string().optional().describe("first address QEMU's DHCP server hands out"),
    home: name("a host name").optional().describe("multi-host labs: the host whose VMs use it"),
    impair: ImpairSchema.optional().describe("refused: QEMU's user stack cannot be shaped"),
  })
  .describe("QEMU user networking (SLIRP): no host changes, port forwards");

export const BridgeNetworkSchema = z
  .strictObject({
    type: z.literal("bridge"),
    bridge: ifname.optional().describe("host bridge name; derived from lab and network otherwise"),
    subnet: z.string().describe("IPv4 subnet in CIDR form"),
    gateway: z.string().optional().describe("the host's address on the bridge; `none` for pure L2"),
    dhcp: z
      .boolean()
      .optional()
      .describe("DHCP and DNS with dnsmasq (default: on when the network has a gateway)"),
    nat: z
      .boolean()
      .optional()
      .describe("masquerade out of the default route or `uplink` (default false)"),
    uplink: ifname.optional().describe("interface NAT leaves by; default: the default route's"),
    dns: z.enum(["host"]).optional().describe("`host`: the host resolves VM names too"),
    forwards: z
      .array(bridgeForward)
      .optional()
      .describe("host ports forwarded to a VM on this network"),
    home: name("a host name")
      .optional()
      .describe("multi-host labs: the host with the gateway, DHCP/DNS, NAT and forwards"),
    vni: z
      .number()
      .int()
      .min(1)
      .max(16777215)
      .optional()
      .describe("multi-host labs: the VXLAN network identifier (derived otherwise)"),
    impair: ImpairSchema.optional().describe("default impairments of every NIC on this network"),
  })
  .describe("a private host bridge with one tap per VM NIC");

export const BridgedNetworkSchema = z
  .strictObject({
    type: z.literal("bridged"),
    uplink: ifname.describe("the host NIC on the LAN; its addresses and routes move to the bridge"),
    bridge: ifname.optional().describe("bridge name; derived otherwise"),
    mode: z.enum(["bridge", "macvtap"]).optional().describe("default bridge"),
    backend: z
      .enum(["nmcli", "iproute2"])
      .optional()
      .describe("who makes the change; detected otherwise"),
    probe: z.string().optional().describe("address probed after the move; default the gateway"),
    home: name("a host name").optional().describe("multi-host labs: the host of the uplink"),
    impair: ImpairSchema.optional().describe("default impairments of every NIC on this network"),
  })
  .describe("VMs on the host's LAN: the uplink is enslaved to a bridge");

export const NetworkSchema = z.discriminatedUnion("type", [
  UserNetworkSchema,
  BridgeNetworkSchema,
  BridgedNetworkSchema,
]);

export const NicSchema = z.strictObject({
  network: z.string().describe("a key of `networks`"),
  ip: z.string().optional().describe("fixed IPv4 address; allocated otherwise"),
  mac: z.string().optional().describe("fixed MAC; derived from lab, VM and NIC index otherwise"),
  model: nicModel.optional().describe("QEMU NIC device, default virtio-net-pci"),
  impair: ImpairSchema.optional().describe("impairments of this NIC (over its network's)"),
});

export const QemuSchema = z.strictObject({
  binary: z.string().min(1).optional().describe("default qemu-system-x86_64"),
  machine: z
    .string()
    .regex(/^[A-Za-z0-9_.,=-]+$/)
    .optional()
    .describe("-machine value, default q35"),
  args: z.array(z.string()).optional().describe("extra argv appended as given"),
});

export const VmSchema = z.strictObject({
  nics: z.array(NicSchema).describe("network interfaces, in PCI order"),
  kernel: z.string().min(1).optional(),
  initrd: z.string().min(1).optional(),
  append: z.string().optional(),
  disk: z.string().min(1).optional().describe("disk image; a cloud-init seed is attached"),
  image: z
    .union([
      z.string().describe("an image qnet builds: debian-12, debian-13"),
      z.strictObject({
        url: z.string().describe("http(s) URL of a qcow2 or raw image"),
        sha256: z.string().optional().describe("its sha256 (required: downloads are verified)"),
      }),
    ])
    .optional()
    .describe("boot from a copy-on-write overlay of this image, with a cloud-init seed"),
  sshKey: z
    .string()
    .optional()
    .describe("public key authorized in a disk or image VM, besides the lab's key"),
  sshUser: z.string().optional().describe("login cloud-init creates (default qnet)"),
  persist: z.boolean().optional().describe("keep the image overlay on `down` (default false)"),
  memory: z.number().int().min(16).max(1048576).optional().describe("MiB, default 256"),
  cpus: z.number().int().min(1).max(255).optional().describe("default 1"),
  user: z.string().regex(USER_RE).optional().describe("owner of this VM's taps"),
  qemu: QemuSchema.optional(),
  host: name("a host name").optional().describe("multi-host labs: the host that runs this VM"),
});

export const HostSchema = z
  .strictObject({
    address: z
      .string()
      .describe("the IPv4 address the other hosts reach this one on (the underlay)"),
    mtu: z
      .number()
      .int()
      .min(1280)
      .max(65535)
      .optional()
      .describe("the underlay's MTU on this host (default 1500); VXLAN takes 50 of it"),
  })
  .describe("one host of a multi-host lab");

export const TopologySchema = z
  .strictObject({
    $schema: z.string().optional(),
    name: name("the lab name"),
    boot: z
      .enum(["instant", "cold"])
      .optional()
      .describe(
        "instant (default): VMs of the built-in guest start from a booted template when their layout allows; cold: always boot",
      ),
    netns: z
      .string()
      .regex(NETNS_RE, { message: NETNS_RULE })
      .optional()
      .describe("network namespace the lab runs in"),
    user: z.string().regex(USER_RE).optional().describe("owner of the lab's taps"),
    hosts: z
      .record(name("a host name"), HostSchema)
      .optional()
      .describe("multi-host labs: the hosts, joined by kernel VXLAN"),
    sshKey: z
      .string()
      .min(1)
      .optional()
      .describe(
        "the lab's login key: an OpenSSH public key line, or the path of a private key; default: a key pair made for the lab",
      ),
    networks: z.record(name("a network name"), NetworkSchema),
    vms: z.record(name("a VM name"), VmSchema),
  })
  .describe("qnet topology file");

/** A topology file as plain data (what an importer writes, what the schema describes). */
export type TopologyFile = z.infer<typeof TopologySchema>;
export type NetworkSpec = z.infer<typeof NetworkSchema>;
export type VmSpec = z.infer<typeof VmSchema>;

/**
 * A validated topology. Networks and VMs are Maps: their keys come from the file, and a name such as
 * `constructor` or `__proto__` must never meet a plain object's prototype.
 */
export interface Topology extends Omit<TopologyFile, "networks" | "vms" | "hosts"> {
  networks: Map<string, NetworkSpec>;
  vms: Map<string, VmSpec>;
  /** Multi-host labs: the hosts in the file's order. */
  hosts?: Map<string, HostSpec>;
}
export type HostSpec = z.infer<typeof HostSchema>;
export type NicSpec = z.infer<typeof NicSchema>;
