// The one firewall model: parses iptables-save and `nft -j list ruleset`, and answers "what drops forwarded
// traffic here, who set it, and where do qnet's accept rules go" for up, status, doctor and check alike.
import type { IptablesFacts, NftChain, NftFacts, NftRule } from "./types.js";

export type Owner = "Docker" | "firewalld" | "ufw" | "libvirt";

/** The comment of an `-m comment --comment X` match: a bare word or a double-quoted string. */
function commentOf(line: string): string | null {
  const m = /--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))/.exec(line);
  if (!m) return null;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]!;
}

/** Parse the `*filter` section of `iptables-save` output; null when there is none. */
export function parseIptablesSave(
  text: string,
  variant: IptablesFacts["variant"],
): IptablesFacts | null {
  const lines = text.split("\n");
  const start = lines.indexOf("*filter");
  if (start < 0) return null;
  const chains: string[] = [];
  const comments = new Map<string, Set<string>>();
  let forwardPolicy: string | null = null;
  let lastForward: string | null = null;
  for (const line of lines.slice(start + 1)) {
    if (line === "COMMIT") break;
    const c = /^:(\S+) (\S+)/.exec(line);
    if (c) {
      chains.push(c[1]!);
      if (c[1] === "FORWARD") forwardPolicy = c[2]!;
      continue;
    }
    const a = /^-A (\S+) /.exec(line);
    if (!a) continue;
    const comment = commentOf(line);
    if (comment !== null) {
      const set = comments.get(a[1]!) ?? new Set<string>();
      set.add(comment);
      comments.set(a[1]!, set);
    }
    if (a[1] === "FORWARD") lastForward = line;
  }
  const catchAll =
    lastForward !== null &&
    /^-A FORWARD -j (DROP|REJECT)( --reject-with \S+)?$/.test(lastForward.trim());
  return {
    variant,
    bin: variant === "legacy" ? "iptables-legacy" : "iptables-nft",
    forwardPolicy,
    forwardCatchAllDrop: catchAll,
    chains,
    comments,
  };
}

/** Parse `nft -j list ruleset`. Throws on text that is not nft's JSON. */
export function parseNftRuleset(text: string): NftFacts {
  const doc = JSON.parse(text || '{"nftables":[]}') as {
    nftables?: Record<string, Record<string, unknown>>[];
  };
  const facts: NftFacts = { tables: [], chains: [], rules: [] };
  const s = (v: unknown) => (v === undefined || v === null ? null : String(v));
  for (const item of doc.nftables ?? []) {
    if (item.table)
      facts.tables.push({ family: String(item.table.family), name: String(item.table.name) });
    const c = item.chain;
    if (c) {
      facts.chains.push({
        family: String(c.family),
        table: String(c.table),
        name: String(c.name),
        hook: s(c.hook),
        type: s(c.type),
        policy: c.hook !== undefined ? String(c.policy ?? "accept") : null,
      });
    }
    const r = item.rule;
    if (r) {
      facts.rules.push({
        family: String(r.family),
        table: String(r.table),
        chain: String(r.chain),
        handle: typeof r.handle === "number" ? r.handle : null,
        comment: typeof r.comment === "string" ? r.comment : null,
        expr: Array.isArray(r.expr) ? r.expr : [],
      });
    }
  }
  return facts;
}

/** One table of a ruleset, as a stable text without rule handles: what qnet compares to spot edits. */
export function nftTableListing(nft: NftFacts, family: string, table: string): string | null {
  if (!nft.tables.some((t) => t.family === family && t.name === table)) return null;
  const mine = <T extends { family: string; table: string }>(x: T) =>
    x.family === family && x.table === table;
  return JSON.stringify({
    chains: nft.chains.filter(mine),
    rules: nft.rules.filter(mine).map(({ handle, ...r }) => r),
  });
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

/** Tables iptables-nft manages inside nftables: seen natively too, but edited through iptables. */
function iptablesNftTable(family: string, table: string): boolean {
  return (
    (family === "ip" || family === "ip6") &&
    ["filter", "nat", "mangle", "raw", "security"].includes(table)
  );
}

/** Where qnet puts its accept rules for one drop: an iptables chain, or a native nft base chain. */
export type AcceptTarget =
  | { type: "iptables"; variant: IptablesFacts["variant"]; bin: string; chain: string }
  | { type: "nft"; family: string; table: string; chain: string };

/** One FORWARD chain that drops what it does not accept. */
export interface ForwardDrop {
  /** For people: "iptables-nft (policy DROP on FORWARD)". */
  where: string;
  owners: Owner[];
  target: AcceptTarget;
  /** Comments of the rules already in the target chain (qnet's own are found by them). */
  comments: Set<string>;
}

export function describeTarget(t: AcceptTarget): string {
  return t.type === "iptables"
    ? `iptables-${t.variant} ${t.chain}`
    : `nftables ${t.family} ${t.table} ${t.chain}`;
}

const bareDrop = (r: NftRule | undefined) =>
  r !== undefined &&
  r.expr.length === 1 &&
  typeof r.expr[0] === "object" &&
  r.expr[0] !== null &&
  ("drop" in r.expr[0] || "reject" in r.expr[0]);

/**
 * Every FORWARD chain that drops by policy or by a final catch-all rule: iptables (legacy and nft, where
 * qnet's rules go into DOCKER-USER when Docker made one, else FORWARD) and native nftables base chains on
 * the forward hook (qnet's rules go into that chain). `ownTable` (the lab's own nft table) is skipped.
 */
export function forwardDrops(
  facts: { iptables: IptablesFacts[]; nft: NftFacts | null },
  ownTable: string | null = null,
): ForwardDrop[] {
  const out: ForwardDrop[] = [];
  for (const f of facts.iptables) {
    const policyDrop = f.forwardPolicy === "DROP";
    if (!policyDrop && !f.forwardCatchAllDrop) continue;
    const chain = f.chains.includes("DOCKER-USER") ? "DOCKER-USER" : "FORWARD";
    out.push({
      where: `iptables-${f.variant} (${policyDrop ? "policy DROP" : "a final -j DROP/REJECT rule"} on FORWARD)`,
      owners: ownersOf(f.chains),
      target: { type: "iptables", variant: f.variant, bin: f.bin, chain },
      comments: f.comments.get(chain) ?? new Set(),
    });
  }
  const nft = facts.nft;
  if (nft) {
    for (const c of nft.chains) {
      if (c.hook !== "forward") continue;
      if (iptablesNftTable(c.family, c.table) || c.table === ownTable) continue;
      const rules = nft.rules.filter(
        (r) => r.family === c.family && r.table === c.table && r.chain === c.name,
      );
      const policyDrop = c.policy === "drop";
      if (!policyDrop && !bareDrop(rules.at(-1))) continue;
      const sameTable = (x: NftChain) => x.family === c.family && x.table === c.table;
      out.push({
        where: `nftables (table ${c.family} ${c.table}, base chain ${c.name} on hook forward, ${policyDrop ? "policy drop" : "a final drop/reject rule"})`,
        owners: ownersOf(
          nft.chains.filter(sameTable).map((x) => x.name),
          [c.table],
        ),
        target: { type: "nft", family: c.family, table: c.table, chain: c.name },
        comments: new Set(rules.flatMap((r) => (r.comment ? [r.comment] : []))),
      });
    }
  }
  return out;
}
