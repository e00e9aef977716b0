// nftables on the host: the lab's own table (loaded atomically, its listing saved to spot edits), accept
// rules in foreign FORWARD chains (iptables or nft), and the undo of each.

import { CommandError, UserError } from "../errors.js";
import { nftTableListing, parseNftRuleset } from "../facts/firewall.js";
import { collides, describeProcs } from "../facts/ss.js";
import type { Observation } from "../facts/types.js";
import type { FirewallPayload } from "../kinds/firewall.js";
import type { NftTablePayload } from "../kinds/nft-table.js";
import type { Action } from "../kinds/types.js";
import type { Lab } from "../model/lab.js";
import type { Undo } from "../model/undo.js";
import { bridgeNetworks } from "../render/nftables.js";
import { writeFileAtomic } from "./files.js";
import { netnsExists } from "./netns.js";
import type { Runner } from "./runner.js";

/**
 * Refuse forwards whose host port a process in the namespace already listens on: the DNAT rule would
 * silently shadow that service (connections to it would reach the VM instead).
 */
function checkForwardPorts(lab: Lab, obs: Observation, netns: string | null): void {
  const hits = bridgeNetworks(lab).flatMap((n) =>
    n.forwards.flatMap((f) =>
      (obs.listeners ?? [])
        .filter((l) => collides(l, f.proto, f.hostAddr, f.hostPort))
        .map(
          (l) =>
            `${f.spec} on ${n.name}: ${f.proto} port ${f.hostPort} is held by ${describeProcs(l)}`,
        ),
    ),
  );
  if (hits.length > 0) {
    throw new UserError(
      `forward host port already in use${netns ? ` in namespace ${netns}` : ""}: ${hits.join("; ")}`,
      "stop that listener or pick another host port for the forward (its DNAT rule would shadow the listener)",
    );
  }
}

/** Load (or delete) the lab's table, then save what was loaded and how nft lists it. */
export async function applyNftTable(
  actions: Action[],
  ctx: { lab: Lab; runner: Runner; obs: Observation },
): Promise<void> {
  for (const a of actions) {
    const p = a.payload as NftTablePayload;
    if (p.text === null) {
      await ctx.runner.run(["nft", "delete", "table", p.family, p.table]);
      continue;
    }
    checkForwardPorts(ctx.lab, ctx.obs, ctx.runner.netns);
    await ctx.runner.run(["nft", "-f", "-"], { input: p.text });
    const after = await ctx.runner.run(["nft", "-j", "list", "table", p.family, p.table]);
    writeFileAtomic(p.rulesFile, p.text);
    writeFileAtomic(
      p.listingFile,
      nftTableListing(parseNftRuleset(after.stdout), p.family, p.table) ?? "",
    );
  }
}

export async function undoNftTable(
  u: Extract<Undo, { kind: "nft-table" }>,
  runner: Runner,
): Promise<void> {
  if (runner.netns && !netnsExists(runner.netns)) return;
  const argv = ["nft", "delete", "table", u.family, u.table];
  const r = await runner.run(argv, { allowFail: true });
  if (r.exitCode !== 0 && !/No such file or directory|does not exist/i.test(r.stderr)) {
    throw new CommandError(argv, r.exitCode, r.stderr);
  }
}

/** Insert each accept rule at the top of its chain (iptables `-I chain 1`, `nft insert rule`). */
export async function applyAcceptRules(actions: Action[], runner: Runner): Promise<void> {
  for (const a of actions) {
    const { target: t, spec } = a.payload as FirewallPayload;
    if (t.type === "iptables")
      await runner.run([t.bin, "-w", "-I", t.chain, "1", ...(spec as string[])]);
    else await runner.run(["nft", "insert", "rule", t.family, t.table, t.chain, spec as string]);
  }
}

export async function undoIptablesRule(
  u: Extract<Undo, { kind: "iptables-rule" }>,
  runner: Runner,
): Promise<void> {
  if (runner.netns && !netnsExists(runner.netns)) return;
  // "Bad rule" / "does a matching rule exist": already gone.
  await runner.run([u.bin, "-w", "-D", u.chain, ...u.spec], { allowFail: true });
}

/** Delete the rules of a chain that carry exactly qnet's comment (none left: nothing to do). */
export async function undoNftRule(
  u: Extract<Undo, { kind: "nft-rule" }>,
  runner: Runner,
): Promise<void> {
  if (runner.netns && !netnsExists(runner.netns)) return;
  const list = await runner.run(["nft", "-j", "list", "chain", u.family, u.table, u.chain], {
    allowFail: true,
  });
  if (list.exitCode !== 0) return; // the table or chain is gone, and our rule with it
  for (const r of parseNftRuleset(list.stdout).rules) {
    if (r.comment === u.comment && r.handle !== null)
      await runner.run([
        "nft",
        "delete",
        "rule",
        u.family,
        u.table,
        u.chain,
        "handle",
        String(r.handle),
      ]);
  }
}
