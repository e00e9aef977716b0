// One VXLAN device per network that spans hosts, on this host's part: VNI, local underlay address,
// dstport 4789 (explicit: Linux's default is 8472), no learning (peers come from static FDB entries),
// the overlay's MTU, attached to the network's bridge. The underlay must hold the address and carry the MTU.
import type { HostLink, Observation } from "../facts/types.js";
import { VXLAN_OVERHEAD, VXLAN_PORT } from "../model/hosts.js";
import type { Lab } from "../model/lab.js";
import { ownerMark } from "../model/names.js";
import { hostAddress } from "../resolve/part.js";
import { batchLine, foreignHolder, linksByName, linkUndo, staleLinks } from "./links.js";
import { ABSENT, type Action, type Kind, type Verdict, verdict } from "./types.js";

export interface WantVxlan {
  name: string;
  network: string;
  bridge: string;
  vni: number;
  /** This host's underlay address (the VTEP's source). */
  local: string;
  port: number;
  mtu: number;
  /** This host (the part), and the network's other hosts (its peers). */
  host: string;
  peers: { host: string; address: string }[];
}

/** The VXLAN devices of a lab's part: one per spanned network it is on. */
export function vxlansOf(lab: Lab): WantVxlan[] {
  const host = lab.part?.host;
  if (!host) return [];
  return lab.networks.flatMap((n) => {
    if (n.type !== "bridge" || !n.span) return [];
    return [
      {
        name: n.span.device,
        network: n.name,
        bridge: n.bridge,
        vni: n.span.vni,
        local: hostAddress(lab, host),
        port: VXLAN_PORT,
        mtu: n.span.mtu,
        host,
        peers: n.span.hosts
          .filter((h) => h !== host)
          .map((h) => ({ host: h, address: hostAddress(lab, h) })),
      },
    ];
  });
}

/** Why a device must be deleted and made again (VXLAN parameters do not change in place), or null. */
export function vxlanRecreateReason(l: HostLink, w: WantVxlan): string | null {
  const v = l.vxlan;
  if (l.kind !== "vxlan" || !v) return `is a ${l.kind ?? "plain"} link, not a VXLAN device`;
  if (v.vni !== w.vni) return `VNI ${v.vni}, wanted ${w.vni}`;
  if (v.local !== w.local) return `local address ${v.local ?? "none"}, wanted ${w.local}`;
  if (v.port !== w.port) return `destination port ${v.port}, wanted ${w.port}`;
  if (v.learning !== false) return "learns remote addresses (wanted nolearning)";
  return null;
}

function createLines(w: WantVxlan, mark: string): string[] {
  return [
    batchLine(
      ...["link", "add", "name", w.name, "mtu", String(w.mtu), "type", "vxlan"],
      ...["id", String(w.vni), "local", w.local, "dstport", String(w.port), "nolearning"],
    ),
    // The mark goes on in the very next line: ip runs the whole batch even if qnet is killed.
    batchLine("link", "set", "dev", w.name, "alias", mark),
    batchLine("link", "set", "dev", w.name, "master", w.bridge, "up"),
  ];
}

/** The underlay: the link that holds this host's address must exist and carry the overlay plus 50. */
function underlayProblems(want: WantVxlan[], obs: Observation, lab: Lab): string[] {
  if (want.length === 0 || !obs.netnsExists) {
    return want.length === 0
      ? []
      : [
          `host ${want[0]!.host}'s underlay address ${want[0]!.local} is on no interface: the namespace${obs.netns ? ` ${obs.netns}` : ""} does not exist yet`,
        ];
  }
  const w = want[0]!;
  const link = obs.links.find((l) =>
    l.addrs.some((a) => a.family === "inet" && a.local === w.local),
  );
  if (!link)
    return [
      `host ${w.host}'s underlay address ${w.local} is on no interface here${obs.netns ? ` (network namespace ${obs.netns})` : ""}: is this host ${w.host}? Pass the right --host (hosts: ${(lab.hosts ?? []).map((h) => `${h.name} ${h.address}`).join(", ")})`,
    ];
  const need = Math.max(...want.map((x) => x.mtu)) + VXLAN_OVERHEAD;
  if (link.mtu !== null && link.mtu < need)
    return [
      `the underlay interface ${link.name} (${w.local}) has MTU ${link.mtu}, but VXLAN needs ${need} (the overlay's ${need - VXLAN_OVERHEAD} + ${VXLAN_OVERHEAD}): set \`mtu: ${link.mtu}\` on host ${w.host} in the file, so the overlay's MTU shrinks instead of packets vanishing`,
    ];
  return [];
}

export const vxlanKind: Kind<WantVxlan> = {
  name: "vxlan",
  desired: (env) => vxlansOf(env.lab),
  observe: () => ({ links: true }),
  diff(want, obs, env) {
    const { lab } = env;
    const mark = ownerMark(lab.name);
    const links = linksByName(obs);
    const problems = underlayProblems(want, obs, lab);
    const verdicts: Verdict[] = [];
    for (const w of want) {
      const l = links.get(w.name);
      const desc = `VXLAN ${w.name} (VNI ${w.vni}, local ${w.local}, dstport ${w.port}, nolearning, MTU ${w.mtu}) on ${w.bridge}`;
      const ok = `network ${w.network}: VNI ${w.vni}, local ${w.local}, dstport ${w.port}, MTU ${w.mtu}, on ${w.bridge}`;
      const foreign = foreignHolder(lab, l, env.netns);
      // Another device on the same port and VNI (another lab's, or someone's): the kernel refuses a second.
      const clash = obs.links.find(
        (x) =>
          x.name !== w.name &&
          x.vxlan?.vni === w.vni &&
          (x.vxlan.port ?? VXLAN_PORT) === w.port &&
          x.alias !== mark,
      );
      if (foreign || clash) {
        problems.push(
          foreign ??
            `VNI ${w.vni} of network ${w.network} is already used by VXLAN device ${clash!.name}${clash!.alias ? ` (marked "${clash!.alias}")` : ""}: set another \`vni:\` on network ${w.network}`,
        );
        verdicts.push({
          kind: "vxlan",
          name: w.name,
          state: "drifted",
          detail: foreign ? "the name is held by an interface qnet did not make" : "VNI in use",
          actions: [],
        });
        continue;
      }
      const act = (what: string, reason: string, batch: string[], undo: boolean): Action => ({
        kind: "vxlan",
        what,
        reason,
        undo: undo ? linkUndo(lab, w.name) : null,
        batch,
        payload: w,
      });
      const actions: Action[] = [];
      const recreate = l ? vxlanRecreateReason(l, w) : null;
      if (!l) actions.push(act(`create ${desc}`, ABSENT, createLines(w, mark), true));
      else if (recreate)
        actions.push(
          act(
            `recreate ${desc}`,
            recreate,
            [batchLine("link", "del", "dev", w.name), ...createLines(w, mark)],
            true,
          ),
        );
      else {
        if (l.mtu !== w.mtu)
          actions.push(
            act(
              `set MTU ${w.mtu} on ${w.name}`,
              `MTU ${l.mtu}`,
              [batchLine("link", "set", "dev", w.name, "mtu", String(w.mtu))],
              false,
            ),
          );
        if (l.master !== w.bridge || !l.up) {
          const why = [
            l.master !== w.bridge
              ? l.master
                ? `attached to ${l.master}, not ${w.bridge}`
                : `detached from ${w.bridge}`
              : "",
            l.up ? "" : "down",
          ];
          actions.push(
            act(
              `attach ${w.name} to ${w.bridge} and set it up`,
              why.filter(Boolean).join(", "),
              [batchLine("link", "set", "dev", w.name, "master", w.bridge, "up")],
              false,
            ),
          );
        }
      }
      verdicts.push(verdict("vxlan", w.name, ok, actions, l ? "drifted" : "missing"));
    }
    verdicts.push(...staleLinks("vxlan", "vxlan", new Set(want.map((w) => w.name)), lab, obs));
    return { verdicts, problems };
  },
};
