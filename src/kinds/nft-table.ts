// The lab's own nftables table (NAT masquerade and port-forward DNAT), loaded atomically; edits are drift.
import { join } from "node:path/posix";
import { nftTableListing } from "../facts/firewall.js";
import { nftTableOf } from "../model/names.js";
import { renderNftRuleset } from "../render/nftables.js";
import { ABSENT, type Action, type Kind, verdict } from "./types.js";

export interface WantNftTable {
  family: "ip";
  table: string;
  /** The rules qnet loaded last, and the table as nft listed it right after (edits show as a difference). */
  rulesFile: string;
  listingFile: string;
}

export interface NftTablePayload extends WantNftTable {
  /** The whole `nft -f -` transaction, or null: delete the table. */
  text: string | null;
}

export const nftFiles = (stateDir: string) => ({
  rulesFile: join(stateDir, "nftables.nft"),
  listingFile: join(stateDir, "nftables.listing"),
});

export const nftTableKind: Kind<WantNftTable> = {
  name: "nft-table",
  // The table is wanted whenever the lab could have one; diff decides from the rendered rules.
  desired: (env) =>
    env.lab.networks.some((n) => n.type === "bridge")
      ? [{ ...nftTableOf(env.lab.name), ...nftFiles(env.stateDir) }]
      : [],
  observe: (want, env) =>
    want.length
      ? {
          nft: true,
          defaultRoute: true,
          files: want.flatMap((w) => [w.rulesFile, w.listingFile]),
          // A forward whose host port a process holds would shadow it: checked before loading.
          listeners: env.lab.networks.some((n) => n.type === "bridge" && n.forwards.length > 0),
        }
      : {},
  diff(want, obs, env) {
    const verdicts = want.flatMap((w) => {
      const text = renderNftRuleset(env.lab, {
        // Rootless: the helper's interface is the lab's only way out, also while the helper is down.
        defaultUplink: env.rootless?.publishedVia ?? obs.defaultRouteDev,
        publishedVia: env.rootless?.publishedVia ?? null,
      });
      const listing = obs.nft ? nftTableListing(obs.nft, w.family, w.table) : null;
      const name = `${w.family} ${w.table}`;
      const act = (what: string, reason: string, payload: NftTablePayload): Action => ({
        kind: "nft-table",
        what,
        reason,
        undo: text === null ? null : { kind: "nft-table", family: w.family, table: w.table },
        payload,
      });
      if (text === null) {
        // No NAT and no forwards (any more): a table left from an earlier topology goes.
        return listing === null
          ? []
          : [
              verdict("nft-table", name, "", [
                act(`delete nftables table ${name}`, "the lab has no NAT or forwards any more", {
                  ...w,
                  text: null,
                }),
              ]),
            ];
      }
      const payload = { ...w, text };
      const load = `nftables table ${name} (NAT and port forwards)`;
      if (listing === null)
        return [
          verdict("nft-table", name, "", [act(load, `${ABSENT} (table gone)`, payload)], "missing"),
        ];
      const same = obs.files.get(w.rulesFile) === text && obs.files.get(w.listingFile) === listing;
      const why =
        obs.files.get(w.rulesFile) !== text
          ? "its rules are not the lab's (the topology changed)"
          : "its rules differ from what qnet loaded (flushed or edited by hand)";
      return [
        verdict(
          "nft-table",
          name,
          "NAT and forwards",
          same ? [] : [act(`reload ${load}`, why, payload)],
        ),
      ];
    });
    return { verdicts };
  },
};
