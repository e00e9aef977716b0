// Checks for a FORWARD drop (iptables-legacy, iptables-nft, nftables), who set it, and whether qnet covers the lab.
import type { Lab } from "../model/lab.js";
import {
  type IptablesFacts,
  type NftFacts,
  ownersOf,
  parseIptablesS,
  parseNftJson,
} from "./firewall-parse.js";
import { probe } from "./run.js";
import type { CheckResult, DoctorContext } from "./types.js";

interface Drop {
  where: string;
  owners: string[];
  /** qnet's accept rules can override it (an iptables FORWARD chain qnet inserts into). */
  covered: boolean;
  /** Where qnet puts its accept rules, or the manual fix. */
  how: string;
  fix?: (bridges: string[]) => string;
}

/** The lab's bridges (what needs forwarding through the host), sorted. */
export function labBridges(lab: Lab | null): string[] {
  if (!lab) return [];
  return lab.networks.flatMap((n) => (n.type === "user" ? [] : [n.bridge])).sort();
}

function iptablesDrop(tool: string, f: IptablesFacts): Drop | null {
  const policyDrop = f.forwardPolicy === "DROP";
  if (!policyDrop && !f.forwardCatchAllDrop) return null;
  const dockerUser = f.chains.includes("DOCKER-USER");
  return {
    where: `${tool} (${policyDrop ? "policy DROP" : "a final -j DROP/REJECT rule"} on FORWARD)`,
    owners: ownersOf(f.chains),
    covered: true,
    how: dockerUser
      ? `qnet inserts accept rules for the lab's bridges into the DOCKER-USER chain (${tool})`
      : `qnet inserts accept rules for the lab's bridges into a chain it owns, jumped to first from FORWARD (${tool})`,
  };
}

function nftDrops(f: NftFacts, skipIptablesNft: boolean): Drop[] {
  const out: Drop[] = [];
  for (const c of f.forward) {
    if (c.policy !== "drop") continue;
    if (c.table.startsWith("qnet")) continue;
    const compat =
      (c.family === "ip" || c.family === "ip6") && c.table === "filter" && c.chain === "FORWARD";
    if (compat && skipIptablesNft) continue;
    const chains = f.chains
      .filter((x) => x.family === c.family && x.table === c.table)
      .map((x) => x.name);
    out.push({
      where: `nftables (table ${c.family} ${c.table}, base chain ${c.chain} on hook forward, policy drop)`,
      owners: ownersOf(chains, [c.table]),
      covered: false,
      how: "an accept in qnet's own table does not override a drop in another table's base chain",
      fix: (bridges) =>
        c.table === "firewalld"
          ? bridges.map((b) => `firewall-cmd --zone=trusted --add-interface=${b}`).join("; ")
          : bridges
              .flatMap((b) => [
                `nft insert rule ${c.family} ${c.table} ${c.chain} iifname "${b}" accept`,
                `nft insert rule ${c.family} ${c.table} ${c.chain} oifname "${b}" accept`,
              ])
              .join("; "),
    });
  }
  return out;
}

/** Every FORWARD drop the runner's namespace has, with who set it. */
export async function findForwardDrops(
  ctx: DoctorContext,
): Promise<{ drops: Drop[]; looked: string[] }> {
  const drops: Drop[] = [];
  const looked: string[] = [];
  // iptables-legacy: only read when its filter table exists (reading it would otherwise create it).
  const names = await probe(ctx.runner, ["cat", `${ctx.env.procRoot}/net/ip_tables_names`]);
  if (names.ok && names.stdout.split("\n").includes("filter")) {
    const r = await probe(ctx.runner, ["iptables-legacy", "-w", "-S"]);
    if (r.ok) {
      looked.push("iptables-legacy");
      const d = iptablesDrop("iptables-legacy", parseIptablesS(r.stdout));
      if (d) drops.push(d);
    }
  }
  let nftCompatFound = false;
  const n = await probe(ctx.runner, ["iptables-nft", "-w", "-S"]);
  if (n.ok) {
    looked.push("iptables-nft");
    const d = iptablesDrop("iptables-nft", parseIptablesS(n.stdout));
    if (d) {
      drops.push(d);
      nftCompatFound = true;
    }
  }
  const j = await probe(ctx.runner, ["nft", "-j", "list", "ruleset"]);
  if (j.ok) {
    try {
      drops.push(...nftDrops(parseNftJson(j.stdout), nftCompatFound));
      looked.push("nftables");
    } catch {
      // Unparseable output: say nothing rather than guess.
    }
  }
  return { drops, looked };
}

export async function checkForwardPolicy(ctx: DoctorContext): Promise<CheckResult[]> {
  const base = { id: "forward-policy", title: "FORWARD drop policy" };
  const where = ctx.runner.netns ? ` in namespace ${ctx.runner.netns}` : "";
  const { drops, looked } = await findForwardDrops(ctx);
  if (looked.length === 0) {
    return [
      {
        ...base,
        status: "skip",
        detail: `Neither iptables nor nft could be read${where}, so the FORWARD policy is unknown.`,
      },
    ];
  }
  if (drops.length === 0) {
    return [
      {
        ...base,
        status: "pass",
        detail: `No FORWARD drop${where} (looked at ${looked.join(", ")}).`,
      },
    ];
  }
  const bridges = labBridges(ctx.lab);
  const who = (d: Drop) =>
    d.owners.length ? `set by ${d.owners.join(" and ")}` : "set by hand or an unknown tool";
  const found = drops.map((d) => `${d.where} ${who(d)}`).join("; ");
  if (ctx.lab && bridges.length === 0) {
    return [
      {
        ...base,
        status: "pass",
        detail: `FORWARD drops${where}: ${found}; harmless here, the lab only uses user networks.`,
      },
    ];
  }
  const uncovered = drops.filter((d) => !d.covered);
  const target = bridges.length ? bridges.join(", ") : "each lab's bridges";
  if (uncovered.length === 0) {
    return [
      {
        ...base,
        status: "warn",
        detail: `FORWARD drops${where}: ${found}; covered: ${drops.map((d) => d.how).join("; ")} (${target}).`,
      },
    ];
  }
  const names = bridges.length ? bridges : ["BRIDGE"];
  return [
    {
      ...base,
      status: "fail",
      detail: `FORWARD drops${where}: ${found}; not covered for ${target}: ${uncovered.map((d) => d.how).join("; ")}, so routed and bridged VM traffic is dropped.`,
      fix: uncovered
        .map((d) => d.fix?.(names))
        .filter(Boolean)
        .join("; "),
    },
  ];
}
