// LAN uplinks (`type: bridged`, mode bridge): the host's NIC moves onto a bridge that takes its MAC,
// addresses and routes (one `ip -batch`, or through NetworkManager: ./uplink-nm.ts); probed afterwards and
// rolled back when the LAN stops answering.
import type { UplinkFacts, UplinkManager, UplinkSnapshot } from "../facts/types.js";
import type { BridgedNetwork } from "../model/lab.js";
import { ownerMark } from "../model/names.js";
import { dhcpNote, networkdRefusal, nmRefusal, wirelessRefusal } from "../plan/uplink-manager.js";
import { type NmMovePlan, nmHolds } from "../plan/uplink-nm.js";
import { moveObstacles, planUplinkMove, probeTarget } from "../plan/uplink-plan.js";
import { linksByName } from "./links.js";
import type { Action, Kind, Verdict } from "./types.js";
import { diffNm } from "./uplink-nm.js";

/** What the executor needs: `apply` is the move's `ip -batch` lines; `nm` the NetworkManager move. */
export type UplinkPayload = {
  net: BridgedNetwork;
  snapshot: UplinkSnapshot;
  probe: string | null;
} & ({ backend: "iproute2"; apply: string[] } | { backend: "nmcli"; nm: NmMovePlan });

export const uplinkKind: Kind<BridgedNetwork> = {
  name: "uplink",
  desired: (env) =>
    env.lab.networks.flatMap((n) => (n.type === "bridged" && n.mode === "bridge" ? [n] : [])),
  observe: (want) =>
    want.length ? { links: true, uplinks: want.map((n) => n.uplink), networkManager: true } : {},
  diff(want, obs, env) {
    const mark = ownerMark(env.lab.name);
    const links = linksByName(obs);
    const problems: string[] = [];
    const notes: string[] = [];
    const verdicts: Verdict[] = [];
    for (const net of want) {
      const facts: UplinkFacts | undefined = obs.uplinks.get(net.uplink);
      const snap = facts?.snapshot ?? null;
      const br = links.get(net.bridge);
      const base = { kind: "uplink" as const, name: net.bridge };
      const refuse = (problem: string, detail: string) => {
        problems.push(problem);
        verdicts.push({ ...base, state: "drifted", detail, actions: [] });
      };
      if (!snap) {
        refuse(
          `network ${net.name}: uplink ${net.uplink} does not exist${env.netns ? ` in namespace ${env.netns}` : ""}; name the host's LAN interface in \`uplink:\` (see \`ip link\`)`,
          `uplink ${net.uplink} gone`,
        );
        continue;
      }
      if (facts?.wireless) {
        const w = wirelessRefusal(net.name, net.uplink);
        refuse(`${w.message}; ${w.hint}`, `uplink ${net.uplink} is wireless`);
        continue;
      }
      const manager: UplinkManager = facts?.manager ?? { kind: "none" };
      if (manager.kind === "nmcli") {
        const r = nmRefusal(net.name, net.uplink, manager, net.backend === "nmcli");
        if (r) {
          refuse(`${r.message}; ${r.hint}`, r.message.replace(/^network [^:]*: /, ""));
          continue;
        }
      }
      if (manager.kind === "nmcli" && nmHolds(manager)) {
        if (snap.master && snap.master !== net.bridge) {
          const why = `${snap.name} is already enslaved to ${snap.master}`;
          refuse(`network ${net.name}: ${why}`, why);
          continue;
        }
        const r = diffNm(net, snap, manager, obs, env);
        if (r.problem) problems.push(r.problem);
        verdicts.push(r.verdict);
        continue;
      }
      if (snap.master === net.bridge && br?.alias === mark) {
        const addrs = br.addrs.filter((a) => a.family === "inet");
        verdicts.push({
          ...base,
          state: "present",
          detail: `network ${net.name}, uplink ${net.uplink}${addrs.length ? `, ${addrs.map((a) => `${a.local}/${a.prefixlen}`).join(" ")}` : ""}`,
          actions: [],
        });
        continue;
      }
      if (br) {
        refuse(
          `network ${net.name}: interface ${net.bridge} already exists${br.alias === mark ? `, but ${net.uplink} is not on it (run \`qnet down ${env.lab.name}\` first)` : " and is not qnet's; pick another `bridge:` name, or delete the interface"}`,
          br.alias === mark
            ? `uplink ${net.uplink} not enslaved`
            : "held by an interface qnet did not make",
        );
        continue;
      }
      const obstacles = moveObstacles(snap, net.bridge);
      if (obstacles.length > 0) {
        refuse(`network ${net.name}: ${obstacles.join("; ")}`, obstacles.join("; "));
        continue;
      }
      if (manager.kind === "networkd") {
        const r = networkdRefusal(net.name, snap.name, net.bridge, manager.networkFile);
        refuse(`${r.message}; ${r.hint}`, `uplink ${net.uplink} is managed by systemd-networkd`);
        continue;
      }
      if (manager.kind === "dhcp")
        notes.push(`network ${net.name}: ${dhcpNote(snap.name, net.bridge, manager)}`);
      const probe = probeTarget(net, snap);
      const p = planUplinkMove(snap, { bridge: net.bridge, alias: mark });
      const action: Action<UplinkPayload> = {
        kind: "uplink",
        what: `create bridge ${net.bridge} with ${snap.name}'s MAC and MTU (STP off, forward delay 0) and move ${snap.name}'s addresses (${p.moved.addrs.join(", ") || "none"}) and routes onto it; probe ${probe ?? "nothing (no gateway)"}, roll back if it does not answer`,
        reason: `network ${net.name} puts VMs on the LAN`,
        undo: {
          kind: "uplink-move",
          uplink: snap.name,
          bridge: net.bridge,
          alias: mark,
          inverse: p.inverse,
          snapshot: snap,
        },
        payload: { net, snapshot: snap, backend: "iproute2", apply: p.apply, probe },
      };
      verdicts.push({
        ...base,
        state: "missing",
        detail: `network ${net.name}: ${net.uplink} is not on ${net.bridge}`,
        actions: [action],
      });
    }
    return { verdicts, problems, notes };
  },
};
