// Who manages a LAN uplink, in words (pure): the refusals for systemd-networkd, Wi-Fi and a NetworkManager
// qnet cannot drive, the note for a DHCP client. Detection lives in src/host; the nmcli move in uplink-nm.ts.
import type { NmUplink, UplinkManager } from "../facts/types.js";

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

/** Why qnet will not move an uplink through NetworkManager (`m`), or null when it can. */
export function nmRefusal(
  network: string,
  uplink: string,
  m: NmUplink,
  forced: boolean,
): { message: string; hint: string } | null {
  if (m.state === "unreachable") {
    return {
      message: `network ${network}: NetworkManager runs in this namespace, but nmcli got no answer from it, so qnet cannot move ${uplink} through it (nor behind its back)`,
      hint: "check that `nmcli general` answers (the D-Bus system bus), or set `backend: iproute2` if NetworkManager does not manage the uplink",
    };
  }
  if (forced && (m.state === "absent" || m.state === "unmanaged")) {
    return {
      message: `network ${network}: \`backend: nmcli\`, but ${m.state === "absent" ? "no NetworkManager runs in this namespace" : `NetworkManager does not manage ${uplink}`}`,
      hint: "remove `backend:` (qnet detects who manages the uplink), or let NetworkManager manage it",
    };
  }
  if (m.state.includes("externally")) {
    return {
      message: `network ${network}: ${uplink} was configured outside NetworkManager (it shows it as "${m.state}"), so there is no profile to copy onto the bridge or to give back on \`qnet down\``,
      hint: `give ${uplink} a NetworkManager profile, or set \`backend: iproute2\` and keep NetworkManager off it (\`nmcli device set ${uplink} managed no\`)`,
    };
  }
  return null;
}
