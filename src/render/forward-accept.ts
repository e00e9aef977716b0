// The accept rules a lab needs in a host FORWARD chain that drops: pure, rendered for iptables and nft.
import type { Lab } from "../model/lab.js";
import { ownerMark } from "../model/names.js";
import { bridgeNetworks, isLoopback, nftIf } from "./nftables.js";

/** One accept rule, in terms both iptables and nft can express. */
export interface AcceptRule {
  /** Short stable key, unique in the lab (part of the nft rule comment). */
  key: string;
  iif?: string;
  oif?: string;
  /** established: replies (RELATED,ESTABLISHED); dnat: connections a forward redirected. */
  ct?: "established" | "dnat";
}

export function acceptRules(lab: Lab): AcceptRule[] {
  const rules: AcceptRule[] = [];
  for (const net of bridgeNetworks(lab)) {
    const br = net.bridge;
    // VM to VM on one bridge: only filtered when br_netfilter is loaded (Docker loads it), but then dropped.
    rules.push({ key: `${br}:intra`, iif: br, oif: br });
    const dnat = net.forwards.some((f) => !isLoopback(f.hostAddr));
    if (net.nat) {
      rules.push({ key: `${br}:out`, iif: br });
      rules.push({ key: `${br}:back`, oif: br, ct: "established" });
    }
    if (dnat) {
      rules.push({ key: `${br}:dnat`, oif: br, ct: "dnat" });
      if (!net.nat) rules.push({ key: `${br}:reply`, iif: br, ct: "established" });
    }
  }
  return rules;
}

/** The rule's match and target as iptables arguments (after `-I/-C/-D <chain>`). */
export function iptablesSpec(lab: string, r: AcceptRule): string[] {
  const a: string[] = [];
  if (r.iif) a.push("-i", r.iif);
  if (r.oif) a.push("-o", r.oif);
  if (r.ct === "established") a.push("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED");
  if (r.ct === "dnat") a.push("-m", "conntrack", "--ctstate", "DNAT");
  a.push("-m", "comment", "--comment", ruleComment(lab, r), "-j", "ACCEPT");
  return a;
}

/** The comment of every accept rule: owner plus key, so each rule's presence can be read off a listing. */
export function ruleComment(lab: string, r: AcceptRule): string {
  return `${ownerMark(lab)} ${r.key}`;
}

/** The rule as an nft statement list (for `nft insert rule <family> <table> <chain> …`). */
export function nftRuleText(lab: string, r: AcceptRule): string {
  const a: string[] = [];
  if (r.iif) a.push(`iifname ${nftIf(r.iif)}`);
  if (r.oif) a.push(`oifname ${nftIf(r.oif)}`);
  if (r.ct === "established") a.push("ct state established,related");
  if (r.ct === "dnat") a.push("ct status dnat");
  a.push("accept", `comment "${ruleComment(lab, r)}"`);
  return a.join(" ");
}
