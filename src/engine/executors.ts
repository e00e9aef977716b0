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
import type { VmPayload } from "../kinds/vm.js";
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

/**
 * The programs each kind's executor runs for these actions: checked, all at once and before the first
 * change, so a missing one is named with its package instead of failing half way.
 */
export const PROGRAMS: { [K in KindName]: (actions: Action[]) => string[] } = {
  netns: () => ["ip"],
  module: () => ["modprobe"],
  "nm-unmanaged": () => ["nmcli"],
  uplink: (actions) =>
    actions.some((a) => (a.payload as { backend?: string }).backend === "nmcli")
      ? ["ip", "nmcli"]
      : ["ip"],
  bridge: () => ["ip"],
  address: () => ["ip"],
  tap: () => ["ip"],
  macvtap: () => ["ip"],
  vxlan: () => ["ip"],
  fdb: () => ["bridge"],
  ifb: () => ["ip"],
  impair: () => ["tc"],
  sysctl: () => ["sysctl"],
  "nft-table": () => ["nft"],
  firewall: (actions) =>
    actions.map((a) => (a.undo?.kind === "iptables-rule" ? a.undo.bin : "nft")),
  dnsmasq: () => ["dnsmasq"],
  hosts: () => [],
  overlay: () => ["qemu-img"],
  seed: () => ["genisoimage"],
  vm: (actions) =>
    actions.flatMap((a) => {
      const { vm } = a.payload as VmPayload;
      // The built-in guest is made from the host's busybox, qemu-ga and dropbear; its keys by ssh-keygen.
      const builtin = ["busybox", "qemu-ga", "dropbear", "dropbearconvert", "ssh-keygen"];
      return [vm.qemu.binary, ...(vm.guest.kind === "builtin" ? builtin : [])];
    }),
};
