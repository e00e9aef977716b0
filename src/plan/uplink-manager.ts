// Who manages a LAN uplink, in words and plans (pure): the nmcli commands of a move and their inverse, the
// refusals for systemd-networkd and Wi-Fi, the note for a DHCP client. Detection lives in src/host.
import type { NmConnectionSettings, UplinkManager } from "../facts/types.js";

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

/** Why a Wi-Fi uplink cannot be bridged, and what to use instead. */
export function wirelessRefusal(
  network: string,
  uplink: string,
): { message: string; hint: string } {
  return {
    message:
      `network ${network}: uplink ${uplink} is a wireless (802.11) interface and cannot be bridged: ` +
      "a Wi-Fi station may only send frames with its own MAC address (the access point drops frames " +
      "from other MACs unless 4-address/WDS mode is enabled on both ends), so the VMs behind a bridge " +
      "would never get through",
    hint: "use `mode: macvtap` on this network (or a routed `type: bridge` network with `nat: true`), or a wired uplink",
  };
}

/** The refusal for a systemd-networkd uplink: networkd would undo a change made behind its back. */
export function networkdRefusal(
  network: string,
  uplink: string,
  bridge: string,
  file: string | null,
): { message: string; hint: string } {
  return {
    message:
      `network ${network}: ${uplink} is managed by systemd-networkd${file ? ` (${file})` : ""}, which would ` +
      "put the addresses back on it at its next reconfiguration; qnet does not move it behind networkd's back",
    hint:
      `configure the bridge in networkd instead: a ${bridge}.netdev with [NetDev] Name=${bridge} Kind=bridge ` +
      `and MACAddress=<${uplink}'s MAC>, a .network matching ${uplink} with [Network] Bridge=${bridge}, and ` +
      `move the Address=/DHCP=/Gateway= settings to a .network matching ${bridge}; then give qnet the ` +
      `existing bridge, or set \`backend: iproute2\` to force the move anyway`,
  };
}

/** What the plan says about a DHCP client holding a lease on the uplink. */
export function dhcpNote(
  uplink: string,
  bridge: string,
  m: UplinkManager & { kind: "dhcp" },
): string {
  const who = m.clients.length
    ? m.clients.map((c) => `pid ${c.pid} (${c.argv.join(" ")})`).join(", ")
    : "a DHCP client (addresses flagged dynamic)";
  return (
    `${uplink} holds a DHCP lease (${m.dynamic.join(", ") || "client running"}) from ${who}: the address moved to ` +
    `${bridge} with its remaining lifetime, but the client still runs on ${uplink}; restart it on ${bridge} ` +
    `(e.g. the same command with ${bridge} instead of ${uplink}) before the lease expires`
  );
}

export const NM_FIELDS = [
  "ipv4.method",
  "ipv4.addresses",
  "ipv4.gateway",
  "ipv4.dns",
  "ipv6.method",
  "ipv6.addresses",
  "ipv6.gateway",
  "ipv6.dns",
] as const;

/** The nmcli argv that moves the uplink onto a bridge, and the argv that undoes it (the seed's way). */
export function planNmcli(opts: {
  lab: string;
  uplink: string;
  bridge: string;
  mac: string;
  settings: NmConnectionSettings | null;
}): { apply: string[][]; inverse: string[][]; bridgeCon: string; portCon: string } {
  const bridgeCon = `qnet-${opts.lab}-${opts.bridge}`;
  const portCon = `qnet-${opts.lab}-${opts.uplink}`;
  const ip: string[] = [];
  for (const fam of ["ipv4", "ipv6"] as const) {
    const s = opts.settings?.[fam];
    if (!s?.method) continue;
    ip.push(`${fam}.method`, s.method);
    if (s.addresses) ip.push(`${fam}.addresses`, s.addresses);
    if (s.gateway) ip.push(`${fam}.gateway`, s.gateway);
    if (s.dns) ip.push(`${fam}.dns`, s.dns);
  }
  const apply = [
    // autoconnect no: the lab is run-time state; after a reboot the host comes back on its own connection.
    [
      "nmcli",
      "connection",
      "add",
      "type",
      "bridge",
      "ifname",
      opts.bridge,
      "con-name",
      bridgeCon,
      "connection.autoconnect",
      "no",
      "bridge.stp",
      "no",
      "bridge.forward-delay",
      "0",
      "ethernet.cloned-mac-address",
      opts.mac,
      ...ip,
    ],
    [
      "nmcli",
      "connection",
      "add",
      "type",
      "ethernet",
      "slave-type",
      "bridge",
      "con-name",
      portCon,
      "ifname",
      opts.uplink,
      "master",
      opts.bridge,
      "connection.autoconnect",
      "no",
    ],
    ["nmcli", "connection", "up", "id", portCon],
    ["nmcli", "connection", "up", "id", bridgeCon],
  ];
  const inverse = [
    ...(opts.settings ? [["nmcli", "connection", "up", "id", opts.settings.id]] : []),
    ["nmcli", "connection", "delete", "id", portCon],
    ["nmcli", "connection", "delete", "id", bridgeCon],
  ];
  return { apply, inverse, bridgeCon, portCon };
}
