// Head-end replication: on each VXLAN device, one static all-zero FDB entry per peer host, so broadcast,
// unknown-unicast and multicast frames go to every other host of the network (no multicast underlay,
// no learning). Entries on a device made in the same run go with it; others are journaled one by one.
import type { FdbEntry } from "../facts/types.js";
import { ownerMark } from "../model/names.js";
import { linksByName } from "./links.js";
import { ABSENT, type Action, type Kind, type Verdict, verdict } from "./types.js";
import { vxlanRecreateReason, vxlansOf, type WantVxlan } from "./vxlan.js";

export const ZERO_MAC = "00:00:00:00:00:00";

export interface WantFdb {
  device: string;
  dst: string;
  peer: string;
  network: string;
  vxlan: WantVxlan;
}

export interface FdbPayload {
  /** `bridge -batch` lines. */
  lines: string[];
}

/** A `bridge -batch` line; every token a plain word (names and addresses are validated upstream). */
export function fdbLine(op: "append" | "del", device: string, dst: string): string {
  const tokens = ["fdb", op, ZERO_MAC, "dev", device, "dst", dst, "self"];
  if (op === "append") tokens.push("permanent");
  for (const t of tokens)
    if (!/^[A-Za-z0-9_.:-]+$/.test(t))
      throw new Error(`unsafe token for bridge -batch: ${JSON.stringify(t)}`);
  return tokens.join(" ");
}

const isFlood = (e: FdbEntry) => e.mac === ZERO_MAC && e.dst !== null;
const objectName = (device: string, dst: string) => `${device} ${dst}`;

export const fdbKind: Kind<WantFdb> = {
  name: "fdb",
  desired: (env) =>
    vxlansOf(env.lab).flatMap((v) =>
      v.peers.map((p) => ({
        device: v.name,
        dst: p.address,
        peer: p.host,
        network: v.network,
        vxlan: v,
      })),
    ),
  observe: (want) => (want.length ? { links: true, fdb: true } : {}),
  diff(want, obs, env) {
    const mark = ownerMark(env.lab.name);
    const links = linksByName(obs);
    const entries = (obs.fdb ?? []).filter(isFlood);
    const verdicts: Verdict[] = [];
    // A device made (or made anew) in this run starts with no entries.
    const fresh = (v: WantVxlan) => {
      const l = links.get(v.name);
      return !l || l.alias !== mark || vxlanRecreateReason(l, v) !== null;
    };
    for (const w of want) {
      const ok = `network ${w.network}: floods to peer ${w.peer} (head-end replication)`;
      const isNew = fresh(w.vxlan);
      const have = !isNew && entries.some((e) => e.dev === w.device && e.dst === w.dst);
      const action: Action<FdbPayload> = {
        kind: "fdb",
        what: `add FDB entry ${ZERO_MAC} dst ${w.dst} on ${w.device} (peer ${w.peer})`,
        reason: isNew ? `${ABSENT} (the device is made in this run)` : ABSENT,
        // On a new device the entry goes with it; on an existing one it is taken back by itself.
        undo: isNew ? null : { kind: "fdb", device: w.device, dst: w.dst, alias: mark },
        payload: { lines: [fdbLine("append", w.device, w.dst)] },
      };
      verdicts.push(
        verdict("fdb", objectName(w.device, w.dst), ok, have ? [] : [action], "missing"),
      );
    }
    // Entries to hosts the file no longer names, on devices this part keeps.
    const wanted = new Set(want.map((w) => objectName(w.device, w.dst)));
    const devices = new Map(want.map((w) => [w.device, w.vxlan]));
    for (const e of entries) {
      const v = devices.get(e.dev);
      if (!v || fresh(v) || wanted.has(objectName(e.dev, e.dst!))) continue;
      const action: Action<FdbPayload> = {
        kind: "fdb",
        what: `delete FDB entry ${ZERO_MAC} dst ${e.dst} on ${e.dev}`,
        reason: "the address is no peer of this network any more",
        undo: null,
        payload: { lines: [fdbLine("del", e.dev, e.dst!)] },
      };
      verdicts.push({
        kind: "fdb",
        name: objectName(e.dev, e.dst!),
        state: "drifted",
        detail: action.reason,
        actions: [action],
      });
    }
    return { verdicts };
  },
};
