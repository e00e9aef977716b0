// One ifb per impaired NIC: the tap's ingress (frames from the VM) is redirected to it, so its egress
// qdiscs shape that direction. A link qnet marks like its taps; made in the links' `ip -batch`.

import { type Impairment, isEmpty } from "../model/impair.js";
import type { Lab } from "../model/lab.js";
import { ownerMark } from "../model/names.js";
import { deriveIfname } from "../resolve/names.js";
import { batchLine, foreignHolder, linksByName, linkUndo, staleLinks } from "./links.js";
import { tapsOf } from "./tap.js";
import { ABSENT, type Action, type Kind, type Verdict, verdict } from "./types.js";

/** A NIC on a tap, with the ifb its ingress goes to and the impairment it wants (null: none). */
export interface ImpairedTap {
  tap: string;
  ifb: string;
  vm: string;
  nic: number;
  impair: Impairment | null;
}

/** The ifb of a VM's NIC: `qnifb-<8 hex>`, hashed like its tap (at most 15 bytes). */
export const ifbName = (lab: string, vm: string, nic: number) =>
  deriveIfname("qnifb-", new Set(), lab, vm, String(nic));

/** Every tap of the lab with its NIC's impairment (taps only: user and macvtap NICs cannot be shaped). */
export function impairedTaps(lab: Lab): ImpairedTap[] {
  const nics = new Map(
    lab.vms.flatMap((vm) => vm.nics.map((n) => [`${vm.name}\0${n.index}`, n] as const)),
  );
  return tapsOf(lab).map((t) => {
    const impair = nics.get(`${t.vm}\0${t.nic}`)?.impair;
    return {
      tap: t.name,
      ifb: ifbName(lab.name, t.vm, t.nic),
      vm: t.vm,
      nic: t.nic,
      impair: isEmpty(impair) ? null : impair!,
    };
  });
}

export const ifbKind: Kind<ImpairedTap> = {
  name: "ifb",
  desired: (env) => impairedTaps(env.lab).filter((t) => t.impair !== null),
  observe: () => ({ links: true }),
  diff(want, obs, env) {
    const { lab } = env;
    const mark = ownerMark(lab.name);
    const links = linksByName(obs);
    const problems: string[] = [];
    const verdicts: Verdict[] = [];
    for (const t of want) {
      const l = links.get(t.ifb);
      const ok = `frames from ${t.vm} nic ${t.nic} (tap ${t.tap})`;
      const foreign = foreignHolder(lab, l, env.netns);
      if (foreign) {
        problems.push(foreign);
        verdicts.push({
          kind: "ifb",
          name: t.ifb,
          state: "drifted",
          detail: `${ok}: the name is held by an interface qnet did not make`,
          actions: [],
        });
        continue;
      }
      const act = (what: string, reason: string, batch: string[], undo: boolean): Action => ({
        kind: "ifb",
        what,
        reason,
        undo: undo ? linkUndo(lab, t.ifb) : null,
        batch,
        payload: t,
      });
      const actions: Action[] = [];
      const create = [
        batchLine("link", "add", t.ifb, "type", "ifb"),
        batchLine("link", "set", "dev", t.ifb, "alias", mark),
        batchLine("link", "set", "dev", t.ifb, "up"),
      ];
      if (!l) actions.push(act(`create ifb ${t.ifb} for ${ok}`, `${ABSENT} (${ok})`, create, true));
      else if (l.kind !== "ifb")
        actions.push(
          act(
            `recreate ifb ${t.ifb} for ${ok}`,
            `is a ${l.kind ?? "plain"} link, not an ifb`,
            [batchLine("link", "del", "dev", t.ifb), ...create],
            true,
          ),
        );
      else if (!l.up)
        actions.push(
          act(`set ifb ${t.ifb} up`, "down", [batchLine("link", "set", "dev", t.ifb, "up")], false),
        );
      verdicts.push(verdict("ifb", t.ifb, ok, actions, l ? "drifted" : "missing"));
    }
    verdicts.push(...staleLinks("ifb", "ifb", new Set(want.map((w) => w.ifb)), lab, obs));
    return { verdicts, problems };
  },
};
