// Pure parsers for firewall listings: `iptables -S` and `nft -j list ruleset`, and who owns what they show.

export type Owner = "Docker" | "firewalld" | "ufw" | "libvirt";

export interface IptablesFacts {
  /** The FORWARD chain's policy, e.g. ACCEPT or DROP; null when absent. */
  forwardPolicy: string | null;
  /** `-A FORWARD -j DROP|REJECT` with no match: drops like a policy. */
  forwardCatchAllDrop: boolean;
  chains: string[];
}

/** Parse `iptables -S` (the filter table). */
export function parseIptablesS(text: string): IptablesFacts {
  const facts: IptablesFacts = { forwardPolicy: null, forwardCatchAllDrop: false, chains: [] };
  for (const raw of text.split("\n")) {
    const w = raw.trim().split(/\s+/);
    if (w[0] === "-P" && w[1] === "FORWARD") facts.forwardPolicy = w[2] ?? null;
    else if (w[0] === "-N" && w[1]) facts.chains.push(w[1]);
    else if (
      w[0] === "-A" &&
      w[1] === "FORWARD" &&
      w[2] === "-j" &&
      (w[3] === "DROP" || w[3] === "REJECT")
    ) {
      if (w.length === 4 || (w.length === 6 && w[4] === "--reject-with"))
        facts.forwardCatchAllDrop = true;
    }
  }
  return facts;
}

export interface NftForwardChain {
  family: string;
  table: string;
  chain: string;
  policy: string;
}

export interface NftFacts {
  tables: { family: string; name: string }[];
  chains: { family: string; table: string; name: string }[];
  /** Base chains on the forward hook. */
  forward: NftForwardChain[];
}

/** Parse `nft -j list ruleset`. Throws on text that is not nft's JSON. */
export function parseNftJson(text: string): NftFacts {
  const doc = JSON.parse(text) as { nftables?: Record<string, Record<string, unknown>>[] };
  const facts: NftFacts = { tables: [], chains: [], forward: [] };
  for (const item of doc.nftables ?? []) {
    if (item.table)
      facts.tables.push({ family: String(item.table.family), name: String(item.table.name) });
    const c = item.chain;
    if (!c) continue;
    facts.chains.push({ family: String(c.family), table: String(c.table), name: String(c.name) });
    if (c.hook === "forward" && c.type !== undefined) {
      facts.forward.push({
        family: String(c.family),
        table: String(c.table),
        chain: String(c.name),
        policy: String(c.policy ?? "accept"),
      });
    }
  }
  return facts;
}

/** Who a set of chain and table names points at. */
export function ownersOf(chains: readonly string[], tables: readonly string[] = []): Owner[] {
  const owners = new Set<Owner>();
  for (const c of chains) {
    if (/^DOCKER(-|$)/.test(c)) owners.add("Docker");
    if (/^ufw6?-/.test(c)) owners.add("ufw");
    if (/^(FWD_|FORWARD_(direct|IN_ZONES|OUT_ZONES))/.test(c) || c.startsWith("filter_FWD"))
      owners.add("firewalld");
    if (/^LIBVIRT_/.test(c)) owners.add("libvirt");
  }
  for (const t of tables) if (t === "firewalld") owners.add("firewalld");
  return [...owners].sort();
}
