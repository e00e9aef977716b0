// The lab's private bridges (`type: bridge` networks): STP off, forward delay 0, nf_call_* 0, up.
import type { HostLink } from "../facts/types.js";
import { ownerMark } from "../model/names.js";
import { batchLine, foreignHolder, linksByName, linkUndo, staleLinks } from "./links.js";
import { ABSENT, type Action, type Kind, type Verdict, verdict } from "./types.js";

export interface WantBridge {
  name: string;
  network: string;
}

const OPTS = [
  "stp_state",
  "0",
  "forward_delay",
  "0",
  "nf_call_iptables",
  "0",
  "nf_call_ip6tables",
  "0",
  "nf_call_arptables",
  "0",
];
const DESCRIBED = "STP off, forward delay 0, nf_call_iptables/ip6tables/arptables 0";

/** The lines that create a bridge with qnet's options and mark (addresses are the address kind's). */
export function createBridgeLines(name: string, mark: string): string[] {
  return [
    batchLine("link", "add", "name", name, "type", "bridge", ...OPTS),
    // The mark goes on in the very next line: ip runs the whole batch even if qnet is killed.
    batchLine("link", "set", "dev", name, "alias", mark),
    batchLine("link", "set", "dev", name, "up"),
  ];
}

/** What differs from qnet's options on an existing bridge. */
function optionDrift(l: HostLink): string[] {
  const b = l.bridge!;
  const d: string[] = [];
  if (b.stpState !== 0) d.push(`STP on (stp_state ${b.stpState})`);
  if (b.forwardDelay !== 0) d.push(`forward_delay ${b.forwardDelay}`);
  for (const [k, v] of [
    ["nf_call_iptables", b.nfCallIptables],
    ["nf_call_ip6tables", b.nfCallIp6tables],
    ["nf_call_arptables", b.nfCallArptables],
  ] as const) {
    // null: the kernel has no bridge netfilter, so nothing to turn off.
    if (v !== null && v !== 0) d.push(`${k} ${v}`);
  }
  return d;
}

export const bridgeKind: Kind<WantBridge> = {
  name: "bridge",
  desired: (env) =>
    env.lab.networks.flatMap((n) =>
      n.type === "bridge" ? [{ name: n.bridge, network: n.name }] : [],
    ),
  observe: () => ({ links: true }),
  diff(want, obs, env) {
    const { lab } = env;
    const mark = ownerMark(lab.name);
    const links = linksByName(obs);
    const problems: string[] = [];
    const verdicts: Verdict[] = [];
    for (const b of want) {
      const l = links.get(b.name);
      const act = (what: string, reason: string, batch: string[], undo = false): Action => ({
        kind: "bridge",
        what,
        reason,
        undo: undo ? linkUndo(lab, b.name) : null,
        batch,
        payload: null,
      });
      const foreign = foreignHolder(lab, l, env.netns);
      if (foreign) {
        problems.push(foreign);
        verdicts.push({
          kind: "bridge",
          name: b.name,
          state: "drifted",
          detail: "the name is held by an interface qnet did not make",
          actions: [],
        });
        continue;
      }
      const actions: Action[] = [];
      if (!l) {
        actions.push(
          act(
            `create bridge ${b.name} (${DESCRIBED})`,
            ABSENT,
            createBridgeLines(b.name, mark),
            true,
          ),
        );
      } else if (l.kind !== "bridge" || !l.bridge) {
        actions.push(
          act(
            `replace ${b.name} by a bridge`,
            `is a ${l.kind ?? "plain"} link, not a bridge`,
            [batchLine("link", "del", "dev", b.name), ...createBridgeLines(b.name, mark)],
            true,
          ),
        );
      } else {
        const drift = optionDrift(l);
        if (drift.length > 0)
          actions.push(
            act(`set bridge ${b.name} ${DESCRIBED}`, drift.join(", "), [
              batchLine("link", "set", "dev", b.name, "type", "bridge", ...OPTS),
            ]),
          );
        if (!l.up)
          actions.push(
            act(`set bridge ${b.name} up`, "down", [batchLine("link", "set", "dev", b.name, "up")]),
          );
      }
      verdicts.push(
        verdict("bridge", b.name, `network ${b.network}`, actions, l ? "drifted" : "missing"),
      );
    }
    verdicts.push(...staleLinks("bridge", "bridge", new Set(want.map((w) => w.name)), lab, obs));
    return { verdicts, problems };
  },
};
