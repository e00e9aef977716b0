// Living with the host's firewall: detect FORWARD chains that drop (iptables legacy/nft, native nftables)
// and add exactly the accept rules the lab needs, each journaled with the argv that deletes it.
import {
  type AcceptRule,
  acceptRules,
  iptablesSpec,
  nftRuleComment,
  nftRuleText,
} from "../render/forward-accept.js";
import { nftTable } from "../render/nftables.js";
import type { LabContext } from "./context.js";
import type { PhaseResult } from "./nat.js";
import { netnsExists } from "./netns.js";
import type { Runner } from "./runner.js";
import { registerUndoHandler, type UndoEnv } from "./undo.js";

/** The filter table of one iptables flavour, as `iptables-save` shows it. */
export interface IptablesFilter {
  variant: "legacy" | "nft";
  /** The command that edits it. */
  bin: string;
  forwardPolicy: string | null;
  /** FORWARD drops what no rule accepts: policy DROP, or a last rule that drops/rejects everything. */
  forwardBlocks: boolean;
  chains: Set<string>;
}

/** A native nftables base chain on the forward hook that drops what it does not accept. */
export interface NftForwardChain {
  family: string;
  table: string;
  chain: string;
  /** Comments of the rules already in it (to find qnet's own). */
  comments: Set<string>;
}

export interface FirewallView {
  iptables: IptablesFilter[];
  nft: NftForwardChain[];
  /** Who set the drop, as far as can be told (Docker, ufw, firewalld). */
  owners: string[];
}

/** Parse the `*filter` section of `iptables-save` output. Pure. */
export function parseIptablesSave(
  text: string,
): { forwardPolicy: string | null; forwardBlocks: boolean; chains: Set<string> } | null {
  const lines = text.split("\n");
  const start = lines.indexOf("*filter");
  if (start < 0) return null;
  const chains = new Set<string>();
  let forwardPolicy: string | null = null;
  let lastForward: string | null = null;
  for (const line of lines.slice(start + 1)) {
    if (line === "COMMIT") break;
    const c = /^:(\S+) (\S+)/.exec(line);
    if (c) {
      chains.add(c[1]!);
      if (c[1] === "FORWARD") forwardPolicy = c[2]!;
    }
    if (line.startsWith("-A FORWARD ")) lastForward = line;
  }
  const catchAll = lastForward !== null && /^-A FORWARD -j (DROP|REJECT)( .*)?$/.test(lastForward);
  return { forwardPolicy, forwardBlocks: forwardPolicy === "DROP" || catchAll, chains };
}

const IPTABLES = [
  { variant: "legacy", save: "iptables-legacy-save", bin: "iptables-legacy" },
  { variant: "nft", save: "iptables-nft-save", bin: "iptables-nft" },
] as const;

/** Tables iptables-nft manages inside nftables (seen natively too, but edited through iptables). */
function iptablesNftTable(family: string, table: string): boolean {
  return (
    (family === "ip" || family === "ip6") &&
    ["filter", "nat", "mangle", "raw", "security"].includes(table)
  );
}

interface NftJson {
  nftables?: {
    chain?: { family: string; table: string; name: string; hook?: string; policy?: string };
    rule?: { family: string; table: string; chain: string; comment?: string; expr?: unknown[] };
  }[];
}

/** Native nftables forward-hook base chains that drop by policy or by a final bare drop/reject. Pure. */
export function parseNftForwardChains(json: string, exclude: string[]): NftForwardChain[] {
  const doc = JSON.parse(json) as NftJson;
  const items = doc.nftables ?? [];
  const found: (NftForwardChain & { policy?: string; last?: unknown[] })[] = [];
  for (const it of items) {
    const c = it.chain;
    if (!c) continue;
    if (c.hook !== "forward" || iptablesNftTable(c.family, c.table) || exclude.includes(c.table))
      continue;
    found.push({
      family: c.family,
      table: c.table,
      chain: c.name,
      comments: new Set(),
      policy: c.policy,
    });
  }
  for (const it of items) {
    const r = it.rule;
    if (!r) continue;
    const ch = found.find(
      (f) => f.family === r.family && f.table === r.table && f.chain === r.chain,
    );
    if (!ch) continue;
    if (r.comment) ch.comments.add(r.comment);
    ch.last = r.expr;
  }
  const bareDrop = (e: unknown[] | undefined) =>
    Array.isArray(e) &&
    e.length === 1 &&
    typeof e[0] === "object" &&
    e[0] !== null &&
    ("drop" in e[0] || "reject" in e[0]);
  return found
    .filter((f) => f.policy === "drop" || bareDrop(f.last))
    .map(({ family, table, chain, comments }) => ({ family, table, chain, comments }));
}

export async function detectFirewall(runner: Runner, lab: string): Promise<FirewallView> {
  const iptables: IptablesFilter[] = [];
  const owners = new Set<string>();
  for (const t of IPTABLES) {
    // *-save only reads: it neither loads modules nor creates tables (listing with -S would).
    const r = await runner.run([t.save], { allowFail: true });
    if (r.exitCode !== 0) continue;
    const f = parseIptablesSave(r.stdout);
    if (!f) continue;
    iptables.push({ variant: t.variant, bin: t.bin, ...f });
    if (f.chains.has("DOCKER-USER") || f.chains.has("DOCKER")) owners.add("Docker");
    if ([...f.chains].some((c) => c.startsWith("ufw-"))) owners.add("ufw");
    if (f.chains.has("FORWARD_direct")) owners.add("firewalld");
  }
  let nft: NftForwardChain[] = [];
  const r = await runner.run(["nft", "-j", "list", "ruleset"], { allowFail: true });
  if (r.exitCode === 0 && r.stdout.trim()) {
    nft = parseNftForwardChains(r.stdout, [nftTable(lab).table]);
    for (const c of nft) if (c.table === "firewalld") owners.add("firewalld");
  }
  return { iptables, nft, owners: [...owners] };
}

/** Add the lab's accept rules wherever a FORWARD chain would drop its traffic. */
export async function applyFirewall(ctx: LabContext): Promise<PhaseResult> {
  const rules = acceptRules(ctx.lab);
  if (rules.length === 0) return { changed: false, notes: [] };
  const view = await detectFirewall(ctx.runner, ctx.lab.name);
  const notes: string[] = [];
  let changed = false;
  const who = view.owners.length > 0 ? ` (set by ${view.owners.join(", ")})` : "";

  for (const f of view.iptables) {
    if (!f.forwardBlocks) continue;
    const chain = f.chains.has("DOCKER-USER") ? "DOCKER-USER" : "FORWARD";
    let added = 0;
    for (const rule of rules) added += (await ensureIptablesRule(ctx, f.bin, chain, rule)) ? 1 : 0;
    if (added > 0) {
      changed = true;
      notes.push(
        `iptables (${f.variant}) FORWARD drops by default${who}: added ${added} accept rule(s) to ${chain}`,
      );
    }
  }
  for (const c of view.nft) {
    let added = 0;
    for (const rule of rules) added += (await ensureNftRule(ctx, c, rule)) ? 1 : 0;
    if (added > 0) {
      changed = true;
      notes.push(
        `nftables chain ${c.family} ${c.table} ${c.chain} drops forwarded traffic${who}: added ${added} accept rule(s)`,
      );
    }
  }
  return { changed, notes };
}

async function ensureIptablesRule(
  ctx: LabContext,
  bin: string,
  chain: string,
  rule: AcceptRule,
): Promise<boolean> {
  const spec = iptablesSpec(ctx.lab.name, rule);
  const check = await ctx.runner.run([bin, "-w", "-C", chain, ...spec], { allowFail: true });
  if (check.exitCode === 0) return false;
  const del = [bin, "-w", "-D", chain, ...spec];
  ctx.journal.record({ what: `${bin} accept rule in ${chain}`, undo: { kind: "argv", argv: del } });
  await ctx.runner.run([bin, "-w", "-I", chain, "1", ...spec]);
  return true;
}

async function ensureNftRule(
  ctx: LabContext,
  c: NftForwardChain,
  rule: AcceptRule,
): Promise<boolean> {
  const comment = nftRuleComment(ctx.lab.name, rule);
  if (c.comments.has(comment)) return false;
  // Journaled before the insert, and found again by its comment: a handle number would not survive
  // the chain's owner reloading its table (handles restart, and another rule could take ours).
  const undo: NftRuleUndo = { family: c.family, table: c.table, chain: c.chain, comment };
  ctx.journal.record({
    what: `nft accept rule in ${c.family} ${c.table} ${c.chain}`,
    undo: { kind: "custom", handler: "nft-rule-by-comment", data: undo },
  });
  await ctx.runner.run([
    "nft",
    "insert",
    "rule",
    c.family,
    c.table,
    c.chain,
    nftRuleText(ctx.lab.name, rule),
  ]);
  return true;
}

interface NftRuleUndo {
  family: string;
  table: string;
  chain: string;
  comment: string;
}

/** Delete the rules of `chain` that carry exactly qnet's comment (none left: nothing to do). */
async function undoNftRule(data: unknown, env: UndoEnv): Promise<void> {
  const u = data as NftRuleUndo;
  if (env.runner.netns && !netnsExists(env.runner.netns)) return;
  const list = await env.runner.run(["nft", "-a", "list", "chain", u.family, u.table, u.chain], {
    allowFail: true,
  });
  if (list.exitCode !== 0) return; // the table or chain is gone, and our rule with it
  const quoted = `comment ${JSON.stringify(u.comment)}`;
  for (const line of list.stdout.split("\n")) {
    const handle = /# handle (\d+)\s*$/.exec(line)?.[1];
    if (handle && line.includes(quoted)) {
      await env.runner.run(["nft", "delete", "rule", u.family, u.table, u.chain, "handle", handle]);
    }
  }
}

registerUndoHandler("nft-rule-by-comment", undoNftRule);
