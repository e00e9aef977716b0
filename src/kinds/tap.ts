// One tap per VM NIC on a bridge (private, or a LAN bridge that holds the uplink): owner, queues, master, up.
import type { HostLink } from "../facts/types.js";
import type { Lab } from "../model/lab.js";
import { ownerMark } from "../model/names.js";
import { batchLine, foreignHolder, linksByName, linkUndo, staleLinks } from "./links.js";
import { ABSENT, type Action, type Kind, type Verdict, verdict } from "./types.js";

export interface WantTap {
  name: string;
  bridge: string;
  vm: string;
  nic: number;
  user: string | null;
  multiQueue: boolean;
}

const VIRTIO = /^virtio-net/;

/** Every tap a lab wants: NICs on `bridge` networks and on `bridged` networks in bridge mode. */
export function tapsOf(lab: Lab): WantTap[] {
  const bridgeOf = new Map(
    lab.networks.flatMap((n) =>
      n.type === "bridge" || (n.type === "bridged" && n.mode === "bridge")
        ? [[n.name, n.bridge] as const]
        : [],
    ),
  );
  return lab.vms.flatMap((vm) =>
    vm.nics.flatMap((nic) => {
      const bridge = bridgeOf.get(nic.network);
      if (!bridge || !nic.tap) return [];
      return [
        {
          name: nic.tap,
          bridge,
          vm: vm.name,
          nic: nic.index,
          user: vm.user,
          multiQueue: vm.cpus > 1 && VIRTIO.test(nic.model),
        },
      ];
    }),
  );
}

/** Why a tap must be deleted and made again (its flags cannot change in place), or null. */
export function tapRecreateReason(l: HostLink, t: WantTap): string | null {
  if (l.kind !== "tun" || !l.tap || l.tap.type !== "tap")
    return `is a ${l.kind ?? "plain"} link, not a tap`;
  if ((l.tap.user ?? null) !== t.user)
    return `owner ${l.tap.user ?? "none"}, wanted ${t.user ?? "none"}`;
  if (l.tap.multiQueue !== t.multiQueue) return `multi_queue ${l.tap.multiQueue ? "on" : "off"}`;
  return null;
}

function createTapLines(t: WantTap, mark: string): string[] {
  const add = ["tuntap", "add", "dev", t.name, "mode", "tap"];
  if (t.user) add.push("user", t.user);
  if (t.multiQueue) add.push("multi_queue");
  return [
    batchLine(...add),
    // The mark goes on in the very next line: ip runs the whole batch even if qnet is killed.
    batchLine("link", "set", "dev", t.name, "alias", mark),
    batchLine("link", "set", "dev", t.name, "master", t.bridge, "up"),
  ];
}

export const tapKind: Kind<WantTap> = {
  name: "tap",
  desired: (env) => tapsOf(env.lab),
  observe: () => ({ links: true }),
  diff(want, obs, env) {
    const { lab } = env;
    const mark = ownerMark(lab.name);
    const links = linksByName(obs);
    const problems: string[] = [];
    const verdicts: Verdict[] = [];
    for (const t of want) {
      const l = links.get(t.name);
      const desc = `tap ${t.name} for ${t.vm} nic ${t.nic} on ${t.bridge}${t.user ? `, owner ${t.user}` : ""}${t.multiQueue ? ", multi-queue" : ""}`;
      const ok = `${t.vm} nic ${t.nic} on ${t.bridge}`;
      const foreign = foreignHolder(lab, l, env.netns);
      if (foreign) {
        problems.push(foreign);
        verdicts.push({
          kind: "tap",
          name: t.name,
          state: "drifted",
          detail: `${ok}: the name is held by an interface qnet did not make`,
          actions: [],
        });
        continue;
      }
      const act = (what: string, reason: string, batch: string[], undo: boolean): Action => ({
        kind: "tap",
        what,
        reason,
        undo: undo ? linkUndo(lab, t.name) : null,
        batch,
        payload: t,
      });
      const actions: Action[] = [];
      const recreate = l ? tapRecreateReason(l, t) : null;
      if (!l)
        actions.push(act(`create ${desc}`, `${ABSENT} (${ok})`, createTapLines(t, mark), true));
      else if (recreate)
        actions.push(
          act(
            `recreate ${desc}`,
            recreate,
            [batchLine("link", "del", "dev", t.name), ...createTapLines(t, mark)],
            true,
          ),
        );
      else if (l.master !== t.bridge || !l.up) {
        const why = [
          l.master !== t.bridge
            ? l.master
              ? `attached to ${l.master}, not ${t.bridge}`
              : `detached from ${t.bridge}`
            : "",
          l.up ? "" : "down",
        ];
        actions.push(
          act(
            `attach ${t.name} to ${t.bridge} and set it up`,
            why.filter(Boolean).join(", "),
            [batchLine("link", "set", "dev", t.name, "master", t.bridge, "up")],
            false,
          ),
        );
      }
      verdicts.push(verdict("tap", t.name, ok, actions, l ? "drifted" : "missing"));
    }
    verdicts.push(...staleLinks("tap", "tun", new Set(want.map((w) => w.name)), lab, obs));
    return { verdicts, problems };
  },
};
