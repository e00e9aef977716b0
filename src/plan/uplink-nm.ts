// Moving a NetworkManager uplink onto a bridge (pure): qnet's two profiles (bridge and port), the uplink's IP
// settings copied onto the bridge, the DHCP lease pinned during the move, and the marks qnet's profiles carry.
import { v5 as uuidv5 } from "uuid";
import type { NmProfileRef, NmUplink, UplinkSnapshot } from "../facts/types.js";
import { checkedIfname, checkedName } from "../model/names.js";

/**
 * The active profile's properties the bridge profile takes over (nmcli names, read with `nmcli -g` and
 * given back to `nmcli connection add` verbatim): addressing, routes, DNS, and the per-connection settings
 * that follow the host's link to the LAN (firewalld zone, metered, mDNS/LLMNR, DNS over TLS).
 */
export const NM_COPIED = [
  "connection.zone",
  "connection.metered",
  "connection.mdns",
  "connection.llmnr",
  "connection.dns-over-tls",
  "ipv4.method",
  "ipv4.addresses",
  "ipv4.gateway",
  "ipv4.routes",
  "ipv4.route-metric",
  "ipv4.route-table",
  "ipv4.routing-rules",
  "ipv4.dns",
  "ipv4.dns-search",
  "ipv4.dns-options",
  "ipv4.dns-priority",
  "ipv4.ignore-auto-routes",
  "ipv4.ignore-auto-dns",
  "ipv4.never-default",
  "ipv4.may-fail",
  "ipv4.dhcp-client-id",
  "ipv4.dhcp-hostname",
  "ipv4.dhcp-send-hostname",
  "ipv4.dhcp-timeout",
  "ipv6.method",
  "ipv6.addresses",
  "ipv6.gateway",
  "ipv6.routes",
  "ipv6.route-metric",
  "ipv6.route-table",
  "ipv6.routing-rules",
  "ipv6.dns",
  "ipv6.dns-search",
  "ipv6.dns-options",
  "ipv6.dns-priority",
  "ipv6.ignore-auto-routes",
  "ipv6.ignore-auto-dns",
  "ipv6.never-default",
  "ipv6.may-fail",
  "ipv6.addr-gen-mode",
  "ipv6.ip6-privacy",
  "ipv6.token",
] as const;

/** Device states in which NetworkManager does not hold the uplink (or cannot be asked). */
const NOT_HELD = new Set(["absent", "unreachable", "unmanaged"]);

/** True when NetworkManager manages the uplink, so the move goes through it. */
export const nmHolds = (m: NmUplink): boolean => !NOT_HELD.has(m.state);

/** The fixed namespace of qnet's profile UUIDs (RFC 4122 version 5: the same lab and names, the same UUID). */
const QNET_NM_NAMESPACE = "50fb2205-3bf2-4da4-ae96-dbdc5ae4cbea";

/** Every profile qnet makes for a lab is named `qnet-<lab>-<interface>`. */
export const nmProfilePrefix = (lab: string) => `qnet-${checkedName(lab, "lab name")}-`;

/** A qnet profile: its name, and a UUID derived from the lab, its role and its interface (qnet's mark). */
export function nmProfile(lab: string, role: "bridge" | "port", ifname: string): NmProfileRef {
  checkedIfname(ifname, "interface");
  return {
    id: `${nmProfilePrefix(lab)}${ifname}`,
    uuid: uuidv5(`qnet\0${lab}\0${role}\0${ifname}`, QNET_NM_NAMESPACE),
  };
}

/** True for a profile qnet made for this lab: both marks, the name prefix and the derived UUID. */
export function isQnetProfile(lab: string, p: NmProfileRef, role: "bridge" | "port"): boolean {
  if (!p.id.startsWith(nmProfilePrefix(lab))) return false;
  const ifname = p.id.slice(nmProfilePrefix(lab).length);
  try {
    return nmProfile(lab, role, ifname).uuid === p.uuid;
  } catch {
    return false;
  }
}

/** Split one line of `nmcli -t` output: fields are separated by `:`, and `\:` / `\\` escape. */
export function splitNmcliTerse(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "\\" && i + 1 < line.length) {
      cur += line[++i];
    } else if (c === ":") {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** `nmcli -g F1,F2,... connection show` prints one value per line, in field order, `:` escaped as `\:`. */
export function parseNmcliValues(
  stdout: string,
  fields: readonly string[],
): Record<string, string> {
  const lines = stdout.split("\n");
  const out: Record<string, string> = {};
  fields.forEach((f, i) => {
    out[f] = (lines[i] ?? "").replace(/\\(.)/g, "$1").trim();
  });
  return out;
}

/** The items of an nmcli list value ("192.168.1.2/24, 10.0.0.1/8"). */
export const nmList = (v: string | undefined): string[] =>
  (v ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** What the profiles' keyfiles carry besides their settings: a comment for people, user data for tools. */
export interface KeyfileMark {
  comment: string[];
  user: Record<string, string>;
}

export interface NmMoveInput {
  lab: string;
  network: string;
  snapshot: UplinkSnapshot;
  bridge: string;
  nm: NmUplink;
  /** qnet's profiles for this move that exist already, inactive (a run that did not finish): deleted first. */
  stale: NmProfileRef[];
}

export interface NmMovePlan {
  uplink: string;
  bridge: string;
  /** The uplink's active profile before the move: `qnet down` activates it again. */
  original: NmProfileRef | null;
  bridgeProfile: NmProfileRef;
  portProfile: NmProfileRef;
  stale: NmProfileRef[];
  /** nmcli arguments (after `nmcli`) that add the bridge profile, then the port profile. */
  addBridge: string[];
  addPort: string[];
  /** IPv4 addresses the bridge holds before the uplink joins it: its static ones and the pinned leases. */
  bridgeAddrs: string[];
  /** The uplink's DHCP leases (and gateway) the bridge holds statically until it has a lease of its own. */
  pinned: { addresses: string[]; gateway: string | null } | null;
  /** nmcli arguments that give the bridge device its profile's own addresses back (the pin taken off). */
  unpin: string[] | null;
  marks: { bridge: KeyfileMark; port: KeyfileMark };
}

/** The metric of the uplink's routes of one family: the default route's, else any non-link-local one's. */
function effectiveMetric(s: UplinkSnapshot, family: "inet" | "inet6"): number | null {
  const main = s.routes.filter((r) => r.family === family && (!r.table || r.table === "main"));
  const def = main.find((r) => r.dst === "default" && r.metric !== undefined);
  if (def) return def.metric!;
  const other = main.find((r) => r.metric !== undefined && !r.dst.startsWith("fe80:"));
  return other?.metric ?? null;
}

/**
 * Plan the move. The bridge profile: STP off, forward delay 0, the uplink's MAC and MTU, and the IP settings
 * of the uplink's active profile. Where that profile takes its IPv4 address by DHCP, the current lease (and
 * gateway) is pinned on the bridge as static too, so the host has its address from the first moment on the
 * bridge; once the bridge has its own lease, the pin comes off the device (the profile is not rewritten).
 */
export function planNmMove(input: NmMoveInput): NmMovePlan {
  const { lab, network, snapshot: s, bridge, nm } = input;
  checkedName(network, "network name");
  checkedIfname(bridge, "bridge");
  checkedIfname(s.name, "uplink");
  const bridgeProfile = nmProfile(lab, "bridge", bridge);
  const portProfile = nmProfile(lab, "port", s.name);
  const original = nm.profile;
  const settings = nm.settings ?? {};
  const ip: [string, string][] = [];
  for (const f of NM_COPIED) {
    const v = settings[f];
    if (v !== undefined && v !== "") ip.push([f, v]);
  }
  if (!original) ip.push(["ipv4.method", "disabled"], ["ipv6.method", "disabled"]);
  const set = (k: string, v: string) => {
    const at = ip.findIndex(([f]) => f === k);
    if (at >= 0) ip[at] = [k, v];
    else ip.push([k, v]);
  };
  for (const fam of ["ipv4", "ipv6"] as const) {
    // -1 (the default) would give the bridge NetworkManager's bridge metric (425), not the uplink's.
    const m = settings[`${fam}.route-metric`];
    if (m === undefined || m === "" || m === "-1") {
      const eff = effectiveMetric(s, fam === "ipv4" ? "inet" : "inet6");
      if (eff !== null) set(`${fam}.route-metric`, String(eff));
    }
  }
  const statics = nmList(settings["ipv4.addresses"]);
  let pinned: NmMovePlan["pinned"] = null;
  if (settings["ipv4.method"] === "auto") {
    const leases = s.addrs
      .filter((a) => a.family === "inet" && a.dynamic && (a.scope ?? "global") === "global")
      .map((a) => `${a.local}/${a.prefixlen}`)
      .filter((a) => !statics.includes(a));
    const def = s.routes.find(
      (r) =>
        r.family === "inet" && r.dst === "default" && r.gateway && (!r.table || r.table === "main"),
    );
    const gateway =
      !settings["ipv4.gateway"] && settings["ipv4.never-default"] !== "yes"
        ? (def?.gateway ?? null)
        : null;
    if (leases.length > 0) {
      pinned = { addresses: leases, gateway };
      set("ipv4.addresses", [...statics, ...leases].join(", "));
      if (gateway) set("ipv4.gateway", gateway);
    }
  }
  const mtu = String(s.mtu);
  const addBridge = [
    "connection",
    "add",
    "type",
    "bridge",
    "con-name",
    bridgeProfile.id,
    "ifname",
    bridge,
    // In memory only (/run/NetworkManager): the lab is run-time state, and a reboot takes it away.
    "save",
    "no",
    "connection.uuid",
    bridgeProfile.uuid,
    "connection.autoconnect",
    "no",
    // The how-to's profile has STP on with a 15 s forward delay: every new port waits 30 s to forward.
    "bridge.stp",
    "no",
    "bridge.forward-delay",
    "0",
    "ethernet.cloned-mac-address",
    s.mac,
    "ethernet.mtu",
    mtu,
    ...ip.flat(),
  ];
  const addPort = [
    "connection",
    "add",
    "type",
    "ethernet",
    "con-name",
    portProfile.id,
    "ifname",
    s.name,
    "save",
    "no",
    "connection.uuid",
    portProfile.uuid,
    "connection.autoconnect",
    "no",
    "slave-type",
    "bridge",
    "master",
    bridgeProfile.uuid,
    "ethernet.cloned-mac-address",
    s.mac,
    "ethernet.mtu",
    mtu,
  ];
  const unpin = pinned
    ? [
        "device",
        "modify",
        bridge,
        "ipv4.addresses",
        settings["ipv4.addresses"] ?? "",
        "ipv4.gateway",
        settings["ipv4.gateway"] ?? "",
      ]
    : null;
  const origin = original
    ? `the IP settings of profile ${JSON.stringify(original.id)} (${original.uuid}), which \`qnet down ${lab}\` activates again`
    : "no IP settings (it had no active profile)";
  const head = `qnet: made by \`qnet up\` for lab ${lab}, network ${network}; \`qnet down ${lab}\` deletes it.`;
  const user = (role: string) => ({
    "qnet.lab": lab,
    "qnet.network": network,
    "qnet.role": role,
    "qnet.uplink": s.name,
    "qnet.bridge": bridge,
    ...(original ? { "qnet.original": original.uuid } : {}),
  });
  return {
    uplink: s.name,
    bridge,
    original,
    bridgeProfile,
    portProfile,
    stale: input.stale,
    addBridge,
    addPort,
    bridgeAddrs: [...statics, ...(pinned?.addresses ?? [])],
    pinned,
    unpin,
    marks: {
      bridge: {
        comment: [
          head,
          `qnet: bridge ${bridge} with ${s.name}'s MAC and MTU and ${origin}.`,
          "qnet: STP off and forward delay 0, so a new port (the uplink, a VM's tap) forwards at once.",
          ...(pinned
            ? [
                `qnet: ${pinned.addresses.join(", ")}${pinned.gateway ? ` and gateway ${pinned.gateway}` : ""} pinned while ${bridge} gets its own DHCP lease, then taken off the device.`,
              ]
            : []),
        ],
        user: user("bridge"),
      },
      port: {
        comment: [head, `qnet: ${s.name} as a port of bridge ${bridge}.`],
        user: user("port"),
      },
    },
  };
}

const SAFE_USER_VALUE = /^[A-Za-z0-9_.:-]+$/;

/**
 * A keyfile with qnet's mark: the comment on top (replacing an earlier one), the user data in `[user]`
 * (NetworkManager keeps that section when it rewrites the file; the comment lasts until it does).
 */
export function markKeyfile(text: string, mark: KeyfileMark): string {
  const lines = text.split("\n");
  while (lines.length && lines[0]!.startsWith("# qnet:")) lines.shift();
  const out: string[] = [];
  let inUser = false;
  let hadUser = false;
  const data = Object.entries(mark.user).map(([k, v]) => {
    if (!SAFE_USER_VALUE.test(k) || !SAFE_USER_VALUE.test(v))
      throw new Error(`internal: unsafe keyfile user data ${JSON.stringify([k, v])}`);
    return `${k}=${v}`;
  });
  for (const l of lines) {
    if (/^\[.*\]$/.test(l.trim())) {
      inUser = l.trim() === "[user]";
      out.push(l);
      if (inUser) {
        hadUser = true;
        out.push(...data);
      }
      continue;
    }
    if (inUser && /^qnet\./.test(l)) continue;
    out.push(l);
  }
  while (out.length && out.at(-1) === "") out.pop();
  if (!hadUser) out.push("", "[user]", ...data);
  const comment = mark.comment.map((c) => `# ${c.replace(/[\r\n]/g, " ")}`);
  return `${[...comment, ...out].join("\n")}\n`;
}
