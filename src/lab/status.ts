// `qnet status`: the labs qnet knows, and for one lab each object's state (links, services, VMs).

import { confArg } from "../host/dnsmasq.js";
import { netnsExists } from "../host/netns.js";
import { livePid } from "../host/pidfile.js";
import { ProcessRunner } from "../host/runner.js";
import { readLabRecord } from "../host/state.js";
import { labStatus, type StatusObject } from "../host/status.js";
import { vmStatus } from "../host/vm.js";
import { dnsmasqPaths, wantsDnsmasq } from "../render/dnsmasq-conf.js";
import { nftTable, renderNftRuleset } from "../render/nftables.js";

export interface FullStatus {
  lab: string;
  stateDir: string;
  netns: string | null;
  objects: StatusObject[];
  ok: boolean;
}

export async function fullStatus(stateDir: string): Promise<FullStatus> {
  const base = await labStatus(stateDir);
  const rec = readLabRecord(stateDir)!;
  const objects = [...base.objects];
  const runner = new ProcessRunner(base.netns);
  for (const net of rec.lab.networks) {
    if (net.type !== "bridge" || !wantsDnsmasq(net)) continue;
    const p = dnsmasqPaths(stateDir, net.name);
    const pid = livePid(p.pidfile, confArg(p.conf));
    objects.push({
      kind: "dnsmasq",
      name: net.name,
      state: pid ? "present" : "missing",
      detail: pid ? `pid ${pid}, DHCP/DNS on ${net.bridge}` : `not running (log: ${p.logfile})`,
    });
  }
  if (renderNftRuleset(rec.lab, { defaultUplink: null }) !== null) {
    const t = nftTable(rec.lab.name);
    const r =
      base.netns && !netnsExists(base.netns)
        ? null
        : await runner.run(["nft", "list", "table", t.family, t.table], { allowFail: true });
    objects.push({
      kind: "nft-table",
      name: `${t.family} ${t.table}`,
      state: r?.exitCode === 0 ? "present" : "missing",
      detail: r?.exitCode === 0 ? "NAT and forwards" : "table gone (flushed or deleted by hand)",
    });
  }
  const noVms = rec.options?.noVms === true;
  if (!noVms) {
    for (const vm of rec.lab.vms) {
      const s = await vmStatus(stateDir, rec.lab.name, vm.name);
      objects.push({
        kind: "vm",
        name: vm.name,
        state: s.state === "running" ? "present" : s.state === "stopped" ? "missing" : "drifted",
        detail: `${s.state}${s.pid ? ` (pid ${s.pid})` : ""}: ${s.detail}`,
      });
    }
  }
  return { ...base, objects, ok: objects.every((o) => o.state === "present") };
}

export function renderStatusTable(s: FullStatus): string {
  const rows = s.objects.map((o) => [o.kind, o.name, o.state, o.detail]);
  const head = ["KIND", "NAME", "STATE", "DETAIL"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join("  ");
  return `lab ${s.lab}${s.netns ? ` (netns ${s.netns})` : ""}: ${s.ok ? "healthy" : "drift"}\n${[head, ...rows].map(line).join("\n")}\n`;
}
