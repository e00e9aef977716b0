// Accept rules for the lab's bridges in every host FORWARD chain that drops (Docker, firewalld, ufw, by
// hand): the one firewall model (src/facts/firewall.ts) says where they go; each rule is found by its comment.
import { type AcceptTarget, describeTarget, forwardDrops } from "../facts/firewall.js";
import { nftTableOf } from "../model/names.js";
import {
  type AcceptRule,
  acceptRules,
  iptablesSpec,
  nftRuleText,
  ruleComment,
} from "../render/forward-accept.js";
import { type Action, type Kind, verdict } from "./types.js";

export interface FirewallPayload {
  target: AcceptTarget;
  rule: AcceptRule;
  /** iptables: the match after `-I chain 1`; nft: the statement list after `insert rule … chain`. */
  spec: string[] | string;
}

export const firewallKind: Kind<AcceptRule> = {
  name: "firewall",
  desired: (env) => acceptRules(env.lab),
  observe: (want) => (want.length ? { iptables: true, nft: true } : {}),
  diff(want, obs, env) {
    const lab = env.lab.name;
    if (want.length === 0) return { verdicts: [] };
    const drops = forwardDrops(obs, nftTableOf(lab).table);
    const verdicts = drops.map((d) => {
      const missing = want.filter((r) => !d.comments.has(ruleComment(lab, r)));
      const who = d.owners.length ? ` (set by ${d.owners.join(", ")})` : "";
      const actions = missing.map((rule): Action<FirewallPayload> => {
        const t = d.target;
        const comment = ruleComment(lab, rule);
        if (t.type === "iptables") {
          const spec = iptablesSpec(lab, rule);
          return {
            kind: "firewall",
            what: `${t.bin} accept rule ${rule.key} in ${t.chain}`,
            reason: `${d.where} drops forwarded traffic${who}`,
            undo: { kind: "iptables-rule", bin: t.bin, chain: t.chain, spec },
            payload: { target: t, rule, spec },
          };
        }
        return {
          kind: "firewall",
          what: `nft accept rule ${rule.key} in ${t.family} ${t.table} ${t.chain}`,
          reason: `${d.where} drops forwarded traffic${who}`,
          // Found again by its comment: a handle would not survive the owner reloading its table.
          undo: { kind: "nft-rule", family: t.family, table: t.table, chain: t.chain, comment },
          payload: { target: t, rule, spec: nftRuleText(lab, rule) },
        };
      });
      return verdict(
        "firewall",
        `accept rules in ${describeTarget(d.target)}`,
        `${want.length} rule(s) for the lab's bridges; ${d.where}${who}`,
        actions,
        missing.length === want.length ? "missing" : "drifted",
      );
    });
    return { verdicts };
  },
};
