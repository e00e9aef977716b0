// Moving a LAN uplink onto a bridge: from an observed snapshot, the `ip -batch` lines of the move and its exact inverse.
import type { BridgedNetwork, Lab } from "../model/lab.js";
import { IFNAME_RE } from "../model/schema.js";

/** One address of `ip -json addr show dev X` (`addr_info[]`), the fields qnet carries over. */
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

/** One route of `ip -json -4|-6 route show table all dev X`, the fields qnet carries over. */
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

/** What qnet saw of the uplink before touching it. */
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

/** A tap qnet creates on the bridge for a VM NIC. */
export interface TapSpec {
  name: string;
  /** Owner (user name) of the tap, or null: root. */
  user: string | null;
}

export interface UplinkMovePlan {
  /** `ip -batch` lines that move the uplink onto the bridge (one process, stops at the first error). */
  apply: string[];
  /** `ip -batch` lines that put everything back as the snapshot shows it. */
  inverse: string[];
  /** Addresses and routes moved, for people. */
  moved: { addrs: string[]; routes: string[] };
}

const INFINITE = 4294967295;

function checkName(name: string, what: string): void {
  // Batch lines are split on white space by ip: a name must be a plain interface name.
  if (!IFNAME_RE.test(name))
    throw new Error(`internal: ${what} ${JSON.stringify(name)} is not an interface name`);
}

/** Addresses that move: every address but the kernel's own IPv6 link-local ones (the bridge makes its own). */
export function movableAddrs(s: UplinkSnapshot): AddrInfo[] {
  return s.addrs.filter((a) => !(a.family === "inet6" && a.scope === "link"));
}

/** Routes that move: those the kernel does not make by itself from an address (proto kernel, local/broadcast). */
export function movableRoutes(s: UplinkSnapshot): RouteInfo[] {
  return s.routes.filter((r) => {
    if (r.protocol === "kernel") return false;
    if (r.type && !["unicast", "unreachable", "blackhole", "prohibit", "throw"].includes(r.type))
      return false;
    return true;
  });
}

/** `addr add` for one address on `dev`. `toBridge`: the address is already verified on this link, skip DAD. */
export function addrAddLine(a: AddrInfo, dev: string, uplink: string, toBridge: boolean): string {
  const parts = ["addr", "add", `${a.local}/${a.prefixlen}`];
  if (a.peer) parts.push("peer", a.peer);
  parts.push("dev", dev);
  if (a.broadcast) parts.push("broadcast", a.broadcast);
  if (a.family === "inet" && a.label && a.label !== uplink) {
    // An IPv4 label must start with its device's name: eth0:1 becomes br0:1 on the bridge.
    const suffix = a.label.startsWith(uplink) ? a.label.slice(uplink.length) : "";
    const label = toBridge ? `${dev}${suffix}` : a.label;
    if (label !== dev) parts.push("label", label);
  }
  if (a.scope && a.scope !== "global") parts.push("scope", a.scope);
  if (a.metric !== undefined) parts.push("metric", String(a.metric));
  if (a.noprefixroute) parts.push("noprefixroute");
  if (a.home) parts.push("home");
  if (a.mngtmpaddr) parts.push("mngtmpaddr");
  if (a.family === "inet6" && (toBridge || a.nodad)) parts.push("nodad");
  const valid = a.valid_life_time ?? INFINITE;
  const preferred = a.preferred_life_time ?? INFINITE;
  if (valid !== INFINITE || preferred !== INFINITE) {
    parts.push("valid_lft", valid === INFINITE ? "forever" : String(valid));
    parts.push("preferred_lft", preferred === INFINITE ? "forever" : String(preferred));
  }
  return parts.join(" ");
}

export function addrDelLine(a: AddrInfo, dev: string): string {
  return [
    "addr",
    "del",
    `${a.local}/${a.prefixlen}`,
    ...(a.peer ? ["peer", a.peer] : []),
    "dev",
    dev,
  ].join(" ");
}

/** `route replace` of one route onto `dev`: atomic, the route never disappears in between. */
export function routeReplaceLine(r: RouteInfo, dev: string): string {
  // "default" would be read as IPv4 without a gateway: spell the family's zero prefix.
  const dst = r.dst === "default" ? (r.family === "inet6" ? "::/0" : "0.0.0.0/0") : r.dst;
  const parts = ["route", "replace"];
  if (r.type && r.type !== "unicast") parts.push(r.type);
  parts.push(dst);
  if (r.gateway) parts.push("via", r.gateway);
  parts.push("dev", dev);
  if (r.protocol && r.protocol !== "boot") parts.push("proto", r.protocol);
  if (r.scope) parts.push("scope", r.scope);
  if (r.prefsrc) parts.push("src", r.prefsrc);
  if (r.metric !== undefined) parts.push("metric", String(r.metric));
  if (r.table && r.table !== "main") parts.push("table", r.table);
  if (r.pref && r.pref !== "medium") parts.push("pref", r.pref);
  if (r.flags?.includes("onlink")) parts.push("onlink");
  return parts.join(" ");
}

/** Routes without a gateway first: a gateway route needs its gateway reachable on the device. */
function routeOrder(routes: RouteInfo[]): RouteInfo[] {
  return [...routes.filter((r) => !r.gateway), ...routes.filter((r) => r.gateway)];
}

/** IPv6 lists the newest global address first: re-adding in reverse list order restores the order. */
function restoreOrder(addrs: AddrInfo[]): AddrInfo[] {
  return [
    ...addrs.filter((a) => a.family === "inet"),
    ...addrs.filter((a) => a.family === "inet6").reverse(),
  ];
}

export function describeRoute(r: RouteInfo): string {
  return `${r.family === "inet6" ? "ipv6 " : ""}${r.dst}${r.gateway ? ` via ${r.gateway}` : ""}${r.table && r.table !== "main" ? ` table ${r.table}` : ""}`;
}

/** Reasons the move cannot be planned from this snapshot (empty: it can). */
export function moveObstacles(s: UplinkSnapshot, bridge: string): string[] {
  const out: string[] = [];
  if (s.master && s.master !== bridge) out.push(`${s.name} is already enslaved to ${s.master}`);
  for (const r of s.routes) {
    if (r.nexthops || r.nhid !== undefined) {
      out.push(
        `${s.name} carries a multipath or nexthop-object route (${describeRoute(r)}), which qnet does not move`,
      );
    }
  }
  return out;
}

/**
 * The move, ordered so the host never stops answering: the bridge gets the uplink's MAC and a copy of its
 * addresses first (the same address may sit on two devices), then the uplink is enslaved (from here frames
 * reach the bridge, which already answers), the routes are replaced onto the bridge (atomic per route),
 * and only then are the addresses taken off the uplink (secondaries before their primary).
 */
export function planUplinkMove(
  s: UplinkSnapshot,
  opts: { bridge: string; alias: string; taps?: TapSpec[] },
): UplinkMovePlan {
  const { bridge, alias } = opts;
  const taps = opts.taps ?? [];
  checkName(s.name, "uplink");
  checkName(bridge, "bridge");
  for (const t of taps) checkName(t.name, "tap");
  if (!/^[A-Za-z0-9_.:-]+$/.test(alias))
    throw new Error(`internal: alias ${JSON.stringify(alias)}`);
  const obstacles = moveObstacles(s, bridge);
  if (obstacles.length > 0) throw new Error(`internal: unplannable move: ${obstacles.join("; ")}`);

  const addrs = movableAddrs(s);
  const routes = routeOrder(movableRoutes(s));
  const apply: string[] = [
    `link add name ${bridge} address ${s.mac} mtu ${s.mtu} type bridge stp_state 0 forward_delay 0`,
    `link set dev ${bridge} alias ${alias}`,
    ...addrs.map((a) => addrAddLine(a, bridge, s.name, true)),
    `link set dev ${bridge} up`,
  ];
  for (const t of taps) {
    apply.push(
      `tuntap add dev ${t.name} mode tap${t.user ? ` user ${t.user}` : ""}`,
      `link set dev ${t.name} alias ${alias}`,
      `link set dev ${t.name} master ${bridge}`,
      `link set dev ${t.name} up`,
    );
  }
  if (!s.up) apply.push(`link set dev ${s.name} up`);
  apply.push(`link set dev ${s.name} master ${bridge}`);
  apply.push(...routes.map((r) => routeReplaceLine(r, bridge)));
  apply.push(...[...addrs].reverse().map((a) => addrDelLine(a, s.name)));

  const inverse: string[] = [
    ...restoreOrder(addrs).map((a) => addrAddLine(a, s.name, s.name, false)),
    // Routes come back while the uplink is still enslaved (replies reach the bridge, which still answers);
    // releasing it first would blackhole sends for the ~20 ms the kernel takes to unhook a bridge port.
    ...routes.map((r) => routeReplaceLine(r, s.name)),
    // The bridge's addresses go before the release: their prefix routes are older than the uplink's and
    // would keep sending to the bridge, which has no way out once the uplink is released.
    ...[...addrs].reverse().map((a) => addrDelLine(a, bridge)),
    `link set dev ${s.name} nomaster`,
    ...(s.up ? [] : [`link set dev ${s.name} down`]),
    // Persistent taps outlive their bridge: each is deleted by name.
    ...taps.map((t) => `link del dev ${t.name}`),
    `link del dev ${bridge}`,
  ];
  return {
    apply,
    inverse,
    moved: {
      addrs: addrs.map((a) => `${a.local}/${a.prefixlen}`),
      routes: routes.map(describeRoute),
    },
  };
}

/** Batch lines creating one macvtap per VM NIC on the uplink (bridge mode: VMs reach each other). */
export function planMacvtaps(
  uplink: string,
  alias: string,
  nics: { name: string; mac: string }[],
): { apply: string[]; inverse: string[] } {
  checkName(uplink, "uplink");
  const apply: string[] = [];
  const inverse: string[] = [];
  for (const n of nics) {
    checkName(n.name, "macvtap");
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(n.mac)) throw new Error(`internal: MAC ${n.mac}`);
    apply.push(
      `link add link ${uplink} name ${n.name} address ${n.mac} type macvtap mode bridge`,
      `link set dev ${n.name} alias ${alias}`,
      `link set dev ${n.name} up`,
    );
    inverse.push(`link del dev ${n.name}`);
  }
  return { apply, inverse };
}

/** What the host cannot do with macvtap, stated by `qnet plan` and the docs. */
export const MACVTAP_LIMITATION =
  "with mode: macvtap the host cannot reach the VMs over the uplink (macvtap does not loop frames between " +
  "the uplink's own stack and its macvtaps); use mode: bridge, or a second NIC, if the host must talk to them";

/** One bridged network as `qnet plan` shows it: the actions, in order, and notes for people. */
export interface BridgedPlan {
  network: string;
  mode: BridgedNetwork["mode"];
  actions: string[];
  notes: string[];
}

/** Links a bridged network gets, one per VM NIC on it: taps (bridge mode) or macvtaps. */
export function bridgedNics(
  lab: Lab,
  net: BridgedNetwork,
): { vm: string; index: number; name: string; mac: string; user: string | null }[] {
  return lab.vms.flatMap((vm) =>
    vm.nics
      .filter((n) => n.network === net.name)
      .map((n) => ({ vm: vm.name, index: n.index, name: n.tap!, mac: n.mac, user: vm.user })),
  );
}

/** Pure plan of every bridged network of a lab (no host facts): for `qnet plan`. */
export function planBridged(lab: Lab): BridgedPlan[] {
  const out: BridgedPlan[] = [];
  for (const net of lab.networks) {
    if (net.type !== "bridged") continue;
    const nics = bridgedNics(lab, net);
    if (net.mode === "macvtap") {
      out.push({
        network: net.name,
        mode: net.mode,
        actions: nics.map(
          (n) =>
            `create macvtap ${n.name} on ${net.uplink} for ${n.vm} nic ${n.index} (MAC ${n.mac}, mode bridge)`,
        ),
        notes: [MACVTAP_LIMITATION],
      });
      continue;
    }
    out.push({
      network: net.name,
      mode: net.mode,
      actions: [
        `create bridge ${net.bridge} with ${net.uplink}'s MAC address and MTU (STP off, forward delay 0)`,
        `move ${net.uplink}'s IPv4/IPv6 addresses and routes (default route included) onto ${net.bridge}; enslave ${net.uplink}`,
        ...nics.map((n) => `create tap ${n.name} on ${net.bridge} for ${n.vm} nic ${n.index}`),
        `probe ${net.probe ?? "the default gateway"} with ping; roll back automatically if it does not answer`,
      ],
      notes: [
        `${net.uplink} drops for a moment only if the probe fails (then the change is rolled back); ` +
          `backend: ${net.backend ?? "detected (NetworkManager, systemd-networkd, DHCP client or plain iproute2)"}`,
      ],
    });
  }
  return out;
}

/** One neighbour the bridge has resolved (`ip -json neigh show dev BR`). */
export interface NeighInfo {
  dst: string;
  lladdr?: string;
  state?: string[];
}

/**
 * Lines run first in the inverse: the bridge's resolved neighbours, copied (as STALE) to the uplink. While
 * the uplink is still enslaved its own ARP/ND replies go to the bridge, so without them the uplink could not
 * resolve the gateway until it is released and the packets queued meanwhile would be lost.
 */
export function neighCopyLines(neighs: NeighInfo[], uplink: string): string[] {
  checkName(uplink, "uplink");
  return neighs
    .filter((n) => n.lladdr && /^[0-9a-f:]+$/i.test(n.lladdr) && /^[0-9a-f.:]+$/i.test(n.dst))
    .filter((n) => !n.state?.some((st) => ["FAILED", "INCOMPLETE", "NOARP"].includes(st)))
    .map((n) => `neigh replace ${n.dst} lladdr ${n.lladdr} dev ${uplink} nud stale`);
}
