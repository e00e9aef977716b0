// Checks for a FORWARD drop (iptables-legacy, iptables-nft, nftables), who set it, and whether qnet's
// accept rules cover the lab: the same observation and firewall model `up` and `status` use.
import { describeTarget, forwardDrops } from "../facts/firewall.js";
import { emptyRequest } from "../facts/types.js";
import { observe } from "../host/observe.js";
import type { Lab } from "../model/lab.js";
import { nftTableOf } from "../model/names.js";
import { acceptRules, ruleComment } from "../render/forward-accept.js";
import type { CheckResult, DoctorContext } from "./types.js";

/** The lab's bridges (what needs forwarding through the host), sorted. */
export function labBridges(lab: Lab | null): string[] {
  if (!lab) return [];
  return lab.networks.flatMap((n) => (n.type === "user" ? [] : [n.bridge])).sort();
}

/** The firewall as `up` observes it, in the doctor's namespace. */
export const observeFirewall = (ctx: DoctorContext) =>
  observe(ctx.runner, { ...emptyRequest(), iptables: true, nft: true });

/** Every FORWARD chain that drops, by the model `up` uses. */
export async function findForwardDrops(ctx: DoctorContext) {
  return forwardDrops(await observeFirewall(ctx), ctx.lab ? nftTableOf(ctx.lab.name).table : null);
}

export async function checkForwardPolicy(ctx: DoctorContext): Promise<CheckResult[]> {
  const base = { id: "forward-policy", title: "FORWARD drop policy" };
  const where = ctx.runner.netns ? ` in namespace ${ctx.runner.netns}` : "";
  const obs = await observeFirewall(ctx);
  const looked = [
    ...obs.iptables.map((f) => `iptables-${f.variant}`),
    ...(obs.nft ? ["nftables"] : []),
  ];
  if (looked.length === 0) {
    return [
      {
        ...base,
        status: "skip",
        detail: `Neither iptables nor nft could be read${where}, so the FORWARD policy is unknown.`,
      },
    ];
  }
  const drops = forwardDrops(obs, ctx.lab ? nftTableOf(ctx.lab.name).table : null);
  if (drops.length === 0) {
    return [
      {
        ...base,
        status: "pass",
        detail: `No FORWARD drop${where} (looked at ${looked.join(", ")}).`,
      },
    ];
  }
  const who = (d: (typeof drops)[number]) =>
    d.owners.length ? `set by ${d.owners.join(" and ")}` : "set by hand or an unknown tool";
  const found = drops.map((d) => `${d.where} ${who(d)}`).join("; ");
  if (ctx.lab && labBridges(ctx.lab).length === 0) {
    return [
      {
        ...base,
        status: "pass",
        detail: `FORWARD drops${where}: ${found}; harmless here, the lab only uses user networks.`,
      },
    ];
  }
  if (!ctx.lab) {
    return [
      {
        ...base,
        status: "warn",
        detail: `FORWARD drops${where}: ${found}; \`qnet up\` inserts accept rules for each lab's bridges into ${drops.map((d) => describeTarget(d.target)).join(", ")}, and \`qnet down\` removes them.`,
      },
    ];
  }
  const lab = ctx.lab;
  const rules = acceptRules(lab);
  const missing = drops.filter((d) => rules.some((r) => !d.comments.has(ruleComment(lab.name, r))));
  if (missing.length === 0) {
    return [
      {
        ...base,
        status: "pass",
        detail: `FORWARD drops${where}: ${found}; qnet's accept rules for ${labBridges(lab).join(", ")} are in place in ${drops.map((d) => describeTarget(d.target)).join(", ")}.`,
      },
    ];
  }
  return [
    {
      ...base,
      status: "warn",
      detail: `FORWARD drops${where}: ${found}; the lab's routed and bridged traffic is dropped there until qnet's accept rules for ${labBridges(lab).join(", ")} are in ${missing.map((d) => describeTarget(d.target)).join(", ")}: \`qnet up\` inserts them (and \`qnet down\` removes them).`,
      fix: `qnet up <topology file>${ctx.runner.netns ? ` --netns ${ctx.runner.netns}` : ""}`,
    },
  ];
}
