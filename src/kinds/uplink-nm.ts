// A LAN uplink NetworkManager manages (pure): present when the uplink is a port of the bridge under qnet's
// profiles; else the move through nmcli, or why it cannot be made (profiles or names taken, hidden bridge).
import { unmanagedBy } from "../facts/nm-config.js";
import type { NmFacts, NmUplink, Observation, UplinkSnapshot } from "../facts/types.js";
import type { BridgedNetwork } from "../model/lab.js";
import { nmProfile, planNmMove } from "../plan/uplink-nm.js";
import { probeTarget } from "../plan/uplink-plan.js";
import { linksByName } from "./links.js";
import type { Action, PlanEnv, Verdict } from "./types.js";
import type { UplinkPayload } from "./uplink.js";

const addrList = (addrs: { family: string; local: string; prefixlen: number }[]) =>
  addrs
    .filter((a) => a.family === "inet")
    .map((a) => `${a.local}/${a.prefixlen}`)
    .join(" ");

/**
 * A NetworkManager uplink: present when the uplink is a port of the bridge and both carry qnet's profiles;
 * else the move through nmcli, or the reason it cannot be made.
 */
export function diffNm(
  net: BridgedNetwork,
  snap: UplinkSnapshot,
  m: NmUplink,
  obs: Observation,
  env: PlanEnv,
): { verdict: Verdict; problem?: string } {
  const lab = env.lab.name;
  const base = { kind: "uplink" as const, name: net.bridge };
  const refuse = (problem: string, detail: string) => ({
    verdict: { ...base, state: "drifted" as const, detail, actions: [] },
    problem,
  });
  const nm: NmFacts = obs.nm ?? {
    pid: 0,
    running: false,
    version: null,
    devices: [],
    connections: [],
    qnetConf: new Map(),
    config: null,
  };
  const bridgeP = nmProfile(lab, "bridge", net.bridge);
  const portP = nmProfile(lab, "port", snap.name);
  const brDev = nm.devices.find((d) => d.device === net.bridge);
  if (
    snap.master === net.bridge &&
    brDev?.profile?.uuid === bridgeP.uuid &&
    m.profile?.uuid === portP.uuid
  ) {
    const br = linksByName(obs).get(net.bridge);
    const addrs = addrList(br?.addrs ?? []);
    return {
      verdict: {
        ...base,
        state: "present",
        detail: `network ${net.name}, uplink ${net.uplink} (NetworkManager: ${bridgeP.id}, ${portP.id})${addrs ? `, ${addrs}` : ""}`,
        actions: [],
      },
    };
  }
  const ours = nm.connections.filter((c) => c.uuid === bridgeP.uuid || c.uuid === portP.uuid);
  const active = ours.filter((c) => c.device);
  if (active.length > 0 || snap.master === net.bridge) {
    const what = active.length
      ? `qnet's profile${active.length > 1 ? "s" : ""} ${active.map((c) => `${c.id} (on ${c.device})`).join(", ")} active, but ${net.uplink} is not a port of ${net.bridge} under ${portP.id}`
      : `${net.uplink} is a port of ${net.bridge} outside qnet's profiles`;
    return refuse(
      `network ${net.name}: ${what}; run \`qnet down ${lab}\` first, then \`qnet up\` again`,
      what,
    );
  }
  const renamed = ours.find((c) => c.id !== bridgeP.id && c.id !== portP.id);
  if (renamed) {
    return refuse(
      `network ${net.name}: profile ${JSON.stringify(renamed.id)} has the UUID of qnet's profile ${renamed.uuid === bridgeP.uuid ? bridgeP.id : portP.id} but not its name, so qnet does not treat it as its own; delete it (\`nmcli connection delete uuid ${renamed.uuid}\`) or rename it back`,
      `profile ${JSON.stringify(renamed.id)} has qnet's UUID`,
    );
  }
  for (const p of [bridgeP, portP]) {
    const foreign = nm.connections.find((c) => c.id === p.id && c.uuid !== p.uuid);
    if (foreign) {
      return refuse(
        `network ${net.name}: a NetworkManager profile named ${p.id} (${foreign.uuid}) exists that qnet did not make; rename or delete it (\`nmcli connection delete uuid ${foreign.uuid}\`)`,
        `profile name ${p.id} taken`,
      );
    }
  }
  const hidden = nm.config
    ? unmanagedBy(nm.config, { name: net.bridge, type: "bridge" }, (sec) =>
        sec.startsWith("device-qnet-"),
      )
    : [];
  if (hidden.length > 0) {
    return refuse(
      `network ${net.name}: NetworkManager's configuration leaves ${net.bridge} unmanaged (${hidden.join("; ")}), so it cannot run qnet's bridge profile; narrow that setting so it does not match ${net.bridge}, or give the network another \`bridge:\` name`,
      `${net.bridge} unmanaged by NetworkManager's configuration`,
    );
  }
  if (linksByName(obs).has(net.bridge)) {
    return refuse(
      `network ${net.name}: interface ${net.bridge} already exists and is not NetworkManager's bridge for qnet; pick another \`bridge:\` name, or delete the interface`,
      "held by an interface qnet did not make",
    );
  }
  const plan = planNmMove({
    lab,
    network: net.name,
    snapshot: snap,
    bridge: net.bridge,
    nm: m,
    stale: ours.map((c) => ({ id: c.id, uuid: c.uuid })),
  });
  const probe = probeTarget(net, snap);
  const from = plan.original
    ? `the IP settings of profile ${JSON.stringify(plan.original.id)}`
    : "no IP settings";
  const action: Action<UplinkPayload> = {
    kind: "uplink",
    what:
      `move ${snap.name} onto bridge ${net.bridge} through NetworkManager: profile ${bridgeP.id} (STP off, forward delay 0, ` +
      `${snap.name}'s MAC and MTU, ${from})${plan.pinned ? ` holding ${plan.pinned.addresses.join(", ")} until its own DHCP lease` : ""} ` +
      `and port profile ${portP.id}; probe ${probe ?? "nothing (no gateway)"}, roll back if it does not answer`,
    reason: `network ${net.name} puts VMs on the LAN`,
    undo: {
      kind: "uplink-nm",
      lab,
      uplink: snap.name,
      bridge: net.bridge,
      original: plan.original,
      profiles: [plan.portProfile, plan.bridgeProfile],
      snapshot: snap,
    },
    payload: { net, snapshot: snap, probe, backend: "nmcli", nm: plan },
  };
  return {
    verdict: {
      ...base,
      state: "missing",
      detail: `network ${net.name}: ${net.uplink} is not on ${net.bridge}`,
      actions: [action],
    },
  };
}
