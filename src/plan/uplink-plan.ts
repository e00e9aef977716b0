// Moving a LAN uplink onto a bridge: from an observed snapshot, the `ip -batch` lines of the move and its exact inverse.
import ipaddr from "ipaddr.js";
import type { AddrInfo, RouteInfo, UplinkSnapshot } from "../facts/types.js";
import type { BridgedNetwork } from "../model/lab.js";
import { IFNAME_RE } from "../model/names.js";

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

/** The network of an address in the form `ip route` prints it ("192.168.50.0/24", "fd50::/64"). */
function networkOf(a: AddrInfo): string | null {
  try {
    const cidr = `${a.local}/${a.prefixlen}`;
    const net =
      a.family === "inet"
        ? ipaddr.IPv4.networkAddressFromCIDR(cidr)
        : ipaddr.IPv6.networkAddressFromCIDR(cidr);
    return `${net.toString()}/${a.prefixlen}`;
  } catch {
    return null;
  }
}

/** A route's destination, normalised for comparison with `networkOf`. */
function normalDst(dst: string): string {
  const [addr = "", len] = dst.split("/");
  try {
    return `${ipaddr.parse(addr).toString()}/${len}`;
  } catch {
    return dst;
  }
}

/**
 * Routes that move: all but those the kernel makes by itself from an address (local/broadcast routes, the
 * prefix route of an address without `noprefixroute`, IPv6 link-local). A `proto kernel` prefix route of a
 * `noprefixroute` address was added by whoever added the address (NetworkManager does so): it moves too.
 */
export function movableRoutes(s: UplinkSnapshot): RouteInfo[] {
  const auto = new Set(s.addrs.filter((a) => !a.noprefixroute).flatMap((a) => networkOf(a) ?? []));
  return s.routes.filter((r) => {
    if (r.type && !["unicast", "unreachable", "blackhole", "prohibit", "throw"].includes(r.type))
      return false;
    if (r.protocol === "kernel") {
      if (r.family === "inet6" && r.dst.startsWith("fe80:")) return false;
      if (r.table && r.table !== "main") return false;
      return !auto.has(normalDst(r.dst));
    }
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
  opts: { bridge: string; alias: string },
): UplinkMovePlan {
  const { bridge, alias } = opts;
  checkName(s.name, "uplink");
  checkName(bridge, "bridge");
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

/** The address the move is checked against: the network's `probe`, else the uplink's default gateway. */
export function probeTarget(net: BridgedNetwork, snap: UplinkSnapshot): string | null {
  if (net.probe) return net.probe;
  const def = (fam: string) =>
    snap.routes.find(
      (r) =>
        r.family === fam && r.dst === "default" && r.gateway && (!r.table || r.table === "main"),
    );
  return def("inet")?.gateway ?? def("inet6")?.gateway ?? null;
}

/** The snapshot fields that must come back after an undo (lifetimes of dynamic addresses tick, so not those). */
export function comparable(s: UplinkSnapshot): unknown {
  return {
    mac: s.mac,
    mtu: s.mtu,
    up: s.up,
    master: s.master,
    addrs: s.addrs.map(({ valid_life_time, preferred_life_time, tentative, ...a }) => ({
      ...a,
      forever: valid_life_time === 4294967295,
    })),
    routes: s.routes.map(({ flags, ...r }) => r),
  };
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
