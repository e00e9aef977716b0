// Shared by the link kinds (bridge, address, tap, macvtap): `ip -batch` lines, the lab's mark, stale links.
import type { HostLink, Observation } from "../facts/types.js";
import type { Lab } from "../model/lab.js";
import { ownerMark } from "../model/names.js";
import type { Action, KindName, Verdict } from "./types.js";

/** Every token that reaches an `ip -batch` line; the batch tokenizer must see it as one plain word. */
const SAFE_TOKEN = /^[A-Za-z0-9_.:/@-]+$/;

/** One `ip -batch` line from tokens; refuses anything that could split or comment a line. */
export function batchLine(...tokens: string[]): string {
  for (const t of tokens) {
    if (!SAFE_TOKEN.test(t)) throw new Error(`unsafe token for ip -batch: ${JSON.stringify(t)}`);
  }
  return tokens.join(" ");
}

export const linksByName = (obs: Observation) => new Map(obs.links.map((l) => [l.name, l]));

/** How to take back a link qnet makes: delete it, if it still carries the lab's mark. */
export const linkUndo = (lab: Lab, name: string) =>
  ({ kind: "link", name, alias: ownerMark(lab.name) }) as const;

/** Names the lab uses that qnet must never delete as stale: bridged networks' bridges and uplinks. */
export function reservedNames(lab: Lab): Set<string> {
  return new Set(lab.networks.flatMap((n) => (n.type === "bridged" ? [n.bridge, n.uplink] : [])));
}

/** A wanted name held by a link without the lab's mark: qnet must not touch it. */
export function foreignHolder(
  lab: Lab,
  l: HostLink | undefined,
  netns: string | null,
): string | null {
  if (!l || l.alias === ownerMark(lab.name)) return null;
  return `interface name ${l.name} needed by lab "${lab.name}" is already taken by an interface qnet did not create for it (${l.alias ? `marked "${l.alias}"` : "no qnet mark"})${netns ? ` in network namespace ${netns}` : ""}; rename or remove that interface, or give the network another \`bridge:\` name`;
}

/**
 * Links marked for this lab, of `linkKind`, that it no longer wants (a VM or network removed): deleted,
 * unless a port qnet did not make hangs on them.
 */
export function staleLinks(
  kind: KindName,
  linkKind: string,
  wanted: Set<string>,
  lab: Lab,
  obs: Observation,
): Verdict[] {
  const mark = ownerMark(lab.name);
  const reserved = reservedNames(lab);
  const out: Verdict[] = [];
  for (const l of obs.links) {
    if (l.alias !== mark || l.kind !== linkKind || wanted.has(l.name) || reserved.has(l.name))
      continue;
    if (obs.links.some((p) => p.master === l.name && p.alias !== mark)) continue;
    const action: Action = {
      kind,
      what: `delete ${linkKind === "tun" ? "tap" : linkKind} ${l.name}`,
      reason: "marked for this lab but no longer in the topology",
      undo: null,
      batch: [batchLine("link", "del", "dev", l.name)],
      payload: null,
    };
    out.push({ kind, name: l.name, state: "drifted", detail: action.reason, actions: [action] });
  }
  return out;
}
