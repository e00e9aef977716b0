// How each kind's actions are carried out on the host: one static, exhaustive table. Link kinds have no
// executor of their own: the engine runs all their lines in one `ip -batch`.
import { applyOverlays, applySeeds } from "../host/disks.js";
import { applyDnsmasq } from "../host/dnsmasq.js";
import { applyFdb } from "../host/fdb.js";
import { applyHostsBlock } from "../host/hosts-file.js";
import { applyImpairs } from "../host/impair.js";
import { loadModules } from "../host/modules.js";
import { createNetns } from "../host/netns.js";
import { applyAcceptRules, applyNftTable } from "../host/nftables.js";
import { applyNmUnmanaged } from "../host/nm-unmanaged.js";
import { applySysctls } from "../host/sysctl.js";
import { applyUplinks } from "../host/uplink.js";
import { applyVms } from "../host/vm.js";
import type { WantNetns } from "../kinds/netns.js";
import type { Action, KindName } from "../kinds/types.js";
import type { ExecContext } from "./context.js";

/** Makes a kind's changes (its undo records are journaled before); may return notes for people. */
export type Executor = (actions: Action[], ctx: ExecContext) => Promise<string[] | unknown>;

export const EXECUTORS: { [K in KindName]: Executor | "ip-batch" } = {
  netns: async (actions, ctx) => {
    for (const a of actions) await createNetns((a.payload as WantNetns).name, ctx.runner);
  },
  module: (actions, ctx) => loadModules(actions, ctx.runner),
  "nm-unmanaged": (actions, ctx) => applyNmUnmanaged(actions, ctx.runner),
  uplink: (actions, ctx) =>
    applyUplinks(
      actions,
      { runner: ctx.runner, stateDir: ctx.stateDir, labName: ctx.lab.name, progress: ctx.progress },
      ctx.options,
    ),
  bridge: "ip-batch",
  address: "ip-batch",
  tap: "ip-batch",
  macvtap: "ip-batch",
  vxlan: "ip-batch",
  fdb: (actions, ctx) => applyFdb(actions, ctx),
  ifb: "ip-batch",
  impair: (actions, ctx) => applyImpairs(actions, ctx),
  sysctl: (actions, ctx) => applySysctls(actions, ctx.runner),
  "nft-table": (actions, ctx) => applyNftTable(actions, ctx),
  firewall: (actions, ctx) => applyAcceptRules(actions, ctx.runner),
  dnsmasq: (actions, ctx) => applyDnsmasq(actions, ctx.runner),
  hosts: (actions, ctx) => applyHostsBlock(actions, ctx.lab.name),
  overlay: (actions, ctx) => applyOverlays(actions, ctx.progress),
  seed: (actions, ctx) => applySeeds(actions, ctx.lab, ctx.stateDir),
  vm: (actions, ctx) => applyVms(actions, ctx, ctx.options),
};
