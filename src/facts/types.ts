// What qnet observes of a host (one network namespace) in one pass: the facts every command reasons over.
// Pure types: src/host/observe.ts fills them, the resource kinds (src/kinds) and doctor read them.
import type { NmConfigSection } from "./nm-config.js";

export interface HostAddr {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
}

export interface HostBridgeInfo {
  stpState: number | null;
  forwardDelay: number | null;
  nfCallIptables: number | null;
  nfCallIp6tables: number | null;
  nfCallArptables: number | null;
}

export interface HostTapInfo {
  /** "tap" or "tun". */
  type: string | null;
  /** Owner as `ip` prints it (a user name, or a uid when it has none), null: root/any. */
  user: string | null;
  multiQueue: boolean;
}

/** A VXLAN device's parameters (`ip -json -details link`: linkinfo.info_data). */
export interface HostVxlanInfo {
  vni: number | null;
  local: string | null;
  port: number | null;
  learning: boolean | null;
}

/** One entry of `bridge -json fdb show`. */
export interface FdbEntry {
  mac: string;
  /** The device the entry is on. */
  dev: string;
  /** The remote VTEP (VXLAN devices' entries), or null. */
  dst: string | null;
  /** "self", "master", ... */
  flags: string[];
  /** "permanent", "static", or null (learned). */
  state: string | null;
}

export interface HostLink {
  name: string;
  index: number;
  /** linkinfo.info_kind: "bridge", "tun", "veth", "macvtap", ...; null for plain devices. */
  kind: string | null;
  /** The interface alias (ifalias), qnet's ownership mark; null when unset. */
  alias: string | null;
  master: string | null;
  /** Administratively up (the UP flag). */
  up: boolean;
  /** The NO-CARRIER flag: up, but nothing on the other end (a tap no process has open). */
  noCarrier: boolean;
  mac: string | null;
  mtu: number | null;
  bridge: HostBridgeInfo | null;
  tap: HostTapInfo | null;
  vxlan?: HostVxlanInfo | null;
  addrs: HostAddr[];
}

/** One address of `ip -json addr show dev X` (`addr_info[]`), the fields a LAN uplink move carries over. */
export interface AddrInfo {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
  scope?: string;
  label?: string;
  broadcast?: string;
  peer?: string;
  metric?: number;
  dynamic?: boolean;
  noprefixroute?: boolean;
  nodad?: boolean;
  home?: boolean;
  mngtmpaddr?: boolean;
  secondary?: boolean;
  tentative?: boolean;
  valid_life_time?: number;
  preferred_life_time?: number;
}

/** One route of `ip -json -4|-6 route show table all dev X`, the fields a move carries over. */
export interface RouteInfo {
  /** Added by the reader: which family the route was listed under. */
  family: "inet" | "inet6";
  type?: string;
  dst: string;
  gateway?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  table?: string;
  flags?: string[];
  pref?: string;
  nexthops?: unknown;
  nhid?: number;
}

/** A LAN uplink as qnet saw it before touching it. */
export interface UplinkSnapshot {
  name: string;
  ifindex: number;
  mac: string;
  mtu: number;
  up: boolean;
  /** The bridge (or bond) the uplink is already enslaved to, if any. */
  master: string | null;
  addrs: AddrInfo[];
  routes: RouteInfo[];
}

export interface DhcpClient {
  pid: number;
  argv: string[];
}

/** A NetworkManager profile, by name and UUID. */
export interface NmProfileRef {
  id: string;
  uuid: string;
}

/**
 * NetworkManager's hold on a LAN uplink. `state` is its device state (`connected`, `disconnected`, ...),
 * or `absent` (no NetworkManager runs in the namespace), `unreachable` (it runs, nmcli got no answer),
 * `unmanaged`. `settings`: the active profile's properties the bridge profile copies (nmcli names).
 */
export interface NmUplink {
  kind: "nmcli";
  state: string;
  profile: NmProfileRef | null;
  settings: Record<string, string> | null;
}

/** Who manages a LAN uplink. */
export type UplinkManager =
  | NmUplink
  | { kind: "networkd"; networkFile: string | null }
  | { kind: "dhcp"; clients: DhcpClient[]; dynamic: string[] }
  | { kind: "none" };

/** What an uplink looks like, and who manages it. */
export interface UplinkFacts {
  /** null: the interface does not exist. */
  snapshot: UplinkSnapshot | null;
  wireless: boolean;
  manager: UplinkManager;
}

/** One device as NetworkManager lists it (`nmcli -t -f DEVICE,TYPE,STATE,CON-UUID,CONNECTION device`). */
export interface NmDevice {
  device: string;
  type: string;
  /** `connected`, `connected (externally)`, `disconnected`, `unmanaged`, ... */
  state: string;
  /** The active profile, if any. */
  profile: NmProfileRef | null;
}

/** One profile (`nmcli -t -f NAME,UUID,TYPE,DEVICE,ACTIVE,FILENAME connection show`). */
export interface NmConnection {
  id: string;
  uuid: string;
  type: string;
  /** The device it is active on, or null. */
  device: string | null;
  /** Its keyfile as NetworkManager sees it (under its own root), or "" when in memory only. */
  filename: string;
}

/** NetworkManager running in the observed namespace. */
export interface NmFacts {
  pid: number;
  /** nmcli got an answer (false: the daemon runs, but its D-Bus API did not answer). */
  running: boolean;
  version: string | null;
  devices: NmDevice[];
  connections: NmConnection[];
  /** qnet's files in its /run/NetworkManager/conf.d: file name → content. */
  qnetConf: Map<string, string>;
  /** Its merged configuration (`NetworkManager --print-config`); null when not read. */
  config: NmConfigSection[] | null;
}

/** One listening socket (`ss -Hltnp` / `-Hulnp`). */
export interface Listener {
  proto: "tcp" | "udp";
  /** Bound address without brackets: 0.0.0.0, ::, 127.0.0.1, or `*`. */
  addr: string;
  port: number;
  /** Interface the socket is bound to (`addr%iface`), or null. */
  iface: string | null;
  /** Processes holding the socket; empty when ss could not see them. */
  procs: { name: string; pid: number }[];
}

/** nftables as `nft -j list ruleset` shows it. */
export interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle: number | null;
  comment: string | null;
  expr: unknown[];
}

export interface NftChain {
  family: string;
  table: string;
  name: string;
  /** Base chains only: the hook, its type and policy. */
  hook: string | null;
  type: string | null;
  policy: string | null;
}

export interface NftFacts {
  tables: { family: string; name: string }[];
  chains: NftChain[];
  rules: NftRule[];
}

/** The filter table of one iptables flavour, as `iptables-save` shows it. */
export interface IptablesFacts {
  variant: "legacy" | "nft";
  /** The command that edits it. */
  bin: string;
  forwardPolicy: string | null;
  /** The last FORWARD rule drops or rejects everything (it drops like a policy). */
  forwardCatchAllDrop: boolean;
  chains: string[];
  /** Comments of the rules of each chain. */
  comments: Map<string, Set<string>>;
}

/** One qdisc, as `tc -json qdisc show` lists it. */
export interface TcQdisc {
  dev: string;
  kind: string;
  /** "5154:"; the kernel's default qdiscs show "0:". */
  handle: string;
  /** The parent class ("5154:1", "ffff:fff1" for ingress); null for a root qdisc. */
  parent: string | null;
  root: boolean;
  options: Record<string, unknown>;
}

/** One ingress filter with actions, as `tc -json filter show dev X ingress` lists it. */
export interface TcFilter {
  pref: number | null;
  kind: string;
  /** The device a mirred action redirects to, or null. */
  redirectTo: string | null;
}

/** A process qnet started, as found by its pidfile and checked by one exact argv element. */
export interface ProcessKey {
  pidfile: string;
  match: string;
}

export const processKey = (p: ProcessKey) => `${p.pidfile}\0${p.match}`;

/** What one observation reads. Kinds say what they need; the observer reads it all at once. */
export interface ObserveRequest {
  links: boolean;
  /** /proc/sys paths relative to /proc/sys, slash-separated (net/ipv4/ip_forward). */
  sysctls: string[];
  /** Kernel features (modules) whose presence matters. */
  modules: string[];
  nft: boolean;
  iptables: boolean;
  listeners: boolean;
  defaultRoute: boolean;
  /** Files read by path (in the host's mount namespace). */
  files: string[];
  /** Paths whose existence alone matters (disk overlays: never read). */
  exists: string[];
  processes: ProcessKey[];
  /** QMP sockets of running VMs whose run state matters (VM name → socket). */
  qmp: { vm: string; socket: string; key: ProcessKey }[];
  uplinks: string[];
  /** The bridge forwarding database (`bridge -json fdb show`: VXLAN devices' remote VTEPs). */
  fdb?: boolean;
  /** Read every qdisc of the namespace (`tc -json qdisc show`). */
  qdiscs?: boolean;
  /** Devices whose ingress filters to read (those that exist; one `tc -batch`). */
  ingressFilters?: string[];
  /** Kernel features (module names) whose presence to find out without loading anything. */
  kernelFeatures?: string[];
  /** NetworkManager in the namespace: its devices, profiles and qnet's conf.d files. */
  networkManager: boolean;
}

export const emptyRequest = (): ObserveRequest => ({
  links: false,
  sysctls: [],
  modules: [],
  nft: false,
  iptables: false,
  listeners: false,
  defaultRoute: false,
  files: [],
  exists: [],
  processes: [],
  qmp: [],
  uplinks: [],
  networkManager: false,
});

/** One observation of a host: everything a lab's plan, status, doctor and check reason over. */
export interface Observation {
  /** The namespace observed (null: the one qnet runs in). */
  netns: string | null;
  /** False when that namespace does not exist: everything below is then empty. */
  netnsExists: boolean;
  links: HostLink[];
  /** The interface of the IPv4 default route, or null. */
  defaultRouteDev: string | null;
  /** /proc/sys path → value; a key missing here could not be read (the file does not exist). */
  sysctls: Map<string, string>;
  /** Kernel features present (loaded or built in). */
  modules: Set<string>;
  /** null: not read, or nft is not installed. */
  nft: NftFacts | null;
  iptables: IptablesFacts[];
  /** null: not read (or ss failed). */
  listeners: Listener[] | null;
  /** path → content, null when the file does not exist. */
  files: Map<string, string | null>;
  /** The paths of ObserveRequest.exists that exist. */
  existing: Set<string>;
  /** processKey → live PID, or null. */
  processes: Map<string, number | null>;
  /** VM name → QMP run state ("running", "paused", ...), for VMs whose QEMU answered. */
  vmStates: Map<string, string>;
  uplinks: Map<string, UplinkFacts>;
  /** null: not read. */
  fdb?: FdbEntry[] | null;
  /** Every qdisc of the namespace; null when not read (or tc failed). */
  qdiscs: TcQdisc[] | null;
  /** Ingress filters per device asked for (a device that does not exist has none). */
  ingressFilters: Map<string, TcFilter[]>;
  /** Kernel features asked for: present (built in, loaded or loadable), absent, or unknown. */
  kernelFeatures: Map<string, KernelFeature>;
  /** null: no NetworkManager runs in the namespace (or it was not asked for). */
  nm: NmFacts | null;
}

/** Whether the kernel has a feature, and how qnet knows. */
export interface KernelFeature {
  state: "present" | "absent" | "unknown";
  /** Where the answer came from: "/proc/config.gz: CONFIG_NET_SCH_NETEM is not set", ... */
  source: string;
}

export function emptyObservation(netns: string | null, netnsExists: boolean): Observation {
  return {
    netns,
    netnsExists,
    links: [],
    defaultRouteDev: null,
    sysctls: new Map(),
    modules: new Set(),
    nft: null,
    iptables: [],
    listeners: null,
    files: new Map(),
    existing: new Set(),
    processes: new Map(),
    vmStates: new Map(),
    uplinks: new Map(),
    qdiscs: null,
    ingressFilters: new Map(),
    kernelFeatures: new Map(),
    nm: null,
  };
}
