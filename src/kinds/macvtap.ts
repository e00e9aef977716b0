// One macvtap per VM NIC on a `bridged` network in macvtap mode, on the uplink, with the NIC's MAC.
import type { BridgedNetwork } from "../model/lab.js";
import { MAC_RE, ownerMark } from "../model/names.js";
import { batchLine, foreignHolder, linksByName, linkUndo, staleLinks } from "./links.js";
import { ABSENT, type Action, type Kind, type Verdict, verdict } from "./types.js";

export interface WantMacvtap {
  name: string;
  uplink: string;
  network: string;
  mac: string;
  vm: string;
  nic: number;
}

/** What the host cannot do with macvtap, stated by `qnet plan` and the docs. */
export const MACVTAP_LIMITATION =
  "with mode: macvtap the host cannot reach the VMs over the uplink (macvtap does not loop frames between " +
  "the uplink's own stack and its macvtaps); use mode: bridge, or a second NIC, if the host must talk to them";

function createLines(m: WantMacvtap, mark: string): string[] {
  if (!MAC_RE.test(m.mac)) throw new Error(`internal: MAC ${m.mac}`);
  return [
    batchLine(
      "link",
      "add",
      "link",
      m.uplink,
      "name",
      m.name,
      "address",
      m.mac,
      "type",
      "macvtap",
      "mode",
      "bridge",
    ),
    batchLine("link", "set", "dev", m.name, "alias", mark),
    batchLine("link", "set", "dev", m.name, "up"),
  ];
}

export const macvtapKind: Kind<WantMacvtap> = {
  name: "macvtap",
  desired(env) {
    const nets = new Map(
      env.lab.networks.flatMap((n) =>
        n.type === "bridged" && n.mode === "macvtap" ? [[n.name, n] as const] : [],
      ),
    );
    return env.lab.vms.flatMap((vm) =>
      vm.nics.flatMap((nic) => {
        const net: BridgedNetwork | undefined = nets.get(nic.network);
        return net && nic.tap
          ? [
              {
                name: nic.tap,
                uplink: net.uplink,
                network: net.name,
                mac: nic.mac,
                vm: vm.name,
                nic: nic.index,
              },
            ]
          : [];
      }),
    );
  },
  observe: () => ({ links: true }),
  diff(want, obs, env) {
    const { lab } = env;
    const mark = ownerMark(lab.name);
    const links = linksByName(obs);
    const problems: string[] = [];
    const notes = want.length ? [MACVTAP_LIMITATION] : [];
    const verdicts: Verdict[] = [];
    for (const m of want) {
      const l = links.get(m.name);
      const ok = `${m.vm} nic ${m.nic} macvtap on ${m.uplink}`;
      const foreign = foreignHolder(lab, l, env.netns);
      if (!links.has(m.uplink))
        problems.push(
          `network ${m.network}: uplink ${m.uplink} does not exist${env.netns ? ` in namespace ${env.netns}` : ""}; name the host's LAN interface in \`uplink:\` (see \`ip link\`)`,
        );
      if (foreign) {
        problems.push(foreign);
        verdicts.push({
          kind: "macvtap",
          name: m.name,
          state: "drifted",
          detail: `${ok}: the name is held by an interface qnet did not make`,
          actions: [],
        });
        continue;
      }
      const act = (what: string, reason: string, batch: string[], undo: boolean): Action => ({
        kind: "macvtap",
        what,
        reason,
        undo: undo ? linkUndo(lab, m.name) : null,
        batch,
        payload: m,
      });
      const actions: Action[] = [];
      const desc = `macvtap ${m.name} on ${m.uplink} for ${m.vm} nic ${m.nic} (MAC ${m.mac}, mode bridge)`;
      if (!l) actions.push(act(`create ${desc}`, ABSENT, createLines(m, mark), true));
      else if (l.kind !== "macvtap" || l.mac?.toLowerCase() !== m.mac.toLowerCase())
        actions.push(
          act(
            `recreate ${desc}`,
            l.kind !== "macvtap" ? `is a ${l.kind ?? "plain"} link, not a macvtap` : `MAC ${l.mac}`,
            [batchLine("link", "del", "dev", m.name), ...createLines(m, mark)],
            true,
          ),
        );
      else if (!l.up)
        actions.push(
          act(`set ${m.name} up`, "down", [batchLine("link", "set", "dev", m.name, "up")], false),
        );
      verdicts.push(verdict("macvtap", m.name, ok, actions, l ? "drifted" : "missing"));
    }
    verdicts.push(...staleLinks("macvtap", "macvtap", new Set(want.map((w) => w.name)), lab, obs));
    return { verdicts, problems: [...new Set(problems)], notes };
  },
};
