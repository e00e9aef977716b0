// `qnet status`: the labs qnet knows, and for one lab each object's state (links, services, VMs).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { confArg } from "../host/dnsmasq.js";
import { observeHost } from "../host/iproute2.js";
import { netnsExists } from "../host/netns.js";
import { livePid } from "../host/pidfile.js";
import { ProcessRunner } from "../host/runner.js";
import { readLabRecord } from "../host/state.js";
import { labStatus, type StatusObject } from "../host/status.js";
import { vmStatus } from "../host/vm.js";
import { bridgedNics } from "../plan/uplink-plan.js";
import { dnsmasqPaths, wantsDnsmasq } from "../render/dnsmasq-conf.js";
import { nftTable, renderNftRuleset } from "../render/nftables.js";
import { describeAddresses, type NicAddresses, vmAddresses } from "./vm-addresses.js";

/** A status object; VM objects of running VMs carry the addresses their guest agent reports. */
export type FullStatusObject = StatusObject & {
  /** Per NIC (VM objects only): null when the VM is not running or its agent did not answer. */
  addresses?: NicAddresses[] | null;
};

/** Time for each VM's guest agent to report its addresses (VMs are asked in parallel). */
const AGENT_TIMEOUT_MS = 2_500;

export interface FullStatus {
  lab: string;
  stateDir: string;
  netns: string | null;
  objects: FullStatusObject[];
  ok: boolean;
}

export async function fullStatus(stateDir: string): Promise<FullStatus> {
  const base = await labStatus(stateDir);
  const rec = readLabRecord(stateDir)!;
  const objects: FullStatusObject[] = [...base.objects];
  const runner = new ProcessRunner(base.netns);
  if (!base.netns || netnsExists(base.netns)) objects.push(...(await bridgedObjects(rec, runner)));
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
    // `up` saves the table as nft lists it: a difference means someone flushed or edited it.
    const listing = join(stateDir, "nftables.listing");
    const edited =
      r?.exitCode === 0 && existsSync(listing) && readFileSync(listing, "utf8") !== r.stdout;
    objects.push({
      kind: "nft-table",
      name: `${t.family} ${t.table}`,
      state: r?.exitCode !== 0 ? "missing" : edited ? "drifted" : "present",
      detail:
        r?.exitCode !== 0
          ? "table gone (deleted by hand)"
          : edited
            ? "rules differ from what qnet loaded (flushed or edited by hand)"
            : "NAT and forwards",
    });
  }
  const noVms = rec.options?.noVms === true;
  if (!noVms) {
    const rows = await Promise.all(
      rec.lab.vms.map(async (vm): Promise<FullStatusObject> => {
        const s = await vmStatus(stateDir, rec.lab.name, vm.name);
        let detail = `${s.state}${s.pid ? ` (pid ${s.pid})` : ""}: ${s.detail}`;
        let addresses: NicAddresses[] | null = null;
        if (s.state === "running") {
          const a = await vmAddresses(stateDir, vm, AGENT_TIMEOUT_MS);
          if (a.ok) {
            addresses = a.nics;
            detail += `; ${describeAddresses(a.nics)}`;
          } else detail += "; agent not answering";
        }
        return {
          kind: "vm",
          name: vm.name,
          state: s.state === "running" ? "present" : s.state === "stopped" ? "missing" : "drifted",
          detail,
          addresses,
        };
      }),
    );
    objects.push(...rows);
  }
  return { ...base, objects, ok: objects.every((o) => o.state === "present") };
}

/** Bridged networks: the bridge holding the uplink (and its addresses), the VMs' taps or macvtaps. */
async function bridgedObjects(
  rec: NonNullable<ReturnType<typeof readLabRecord>>,
  runner: ProcessRunner,
): Promise<StatusObject[]> {
  const nets = rec.lab.networks.flatMap((n) => (n.type === "bridged" ? [n] : []));
  if (nets.length === 0) return [];
  const byName = new Map((await observeHost(runner)).links.map((l) => [l.name, l]));
  const out: StatusObject[] = [];
  for (const net of nets) {
    const macvtap = net.mode === "macvtap";
    if (!macvtap) {
      const br = byName.get(net.bridge);
      const up = byName.get(net.uplink);
      const d: string[] = [];
      if (br && br.kind !== "bridge") d.push(`is a ${br.kind ?? "plain"} link`);
      if (br && up?.master !== net.bridge)
        d.push(up ? `uplink ${net.uplink} not enslaved` : `uplink ${net.uplink} gone`);
      const addrs = (br?.addrs ?? []).filter((a) => a.family === "inet");
      out.push({
        kind: "bridge",
        name: net.bridge,
        state: !br ? "missing" : d.length ? "drifted" : "present",
        detail: !br
          ? `network ${net.name} (uplink ${net.uplink})`
          : d.length
            ? d.join(", ")
            : `network ${net.name}, uplink ${net.uplink}${addrs.length ? `, ${addrs.map((a) => `${a.local}/${a.prefixlen}`).join(" ")}` : ""}`,
      });
    }
    for (const n of bridgedNics(rec.lab, net)) {
      const l = byName.get(n.name);
      const want = macvtap ? net.uplink : net.bridge;
      const attached = macvtap ? l?.kind === "macvtap" : l?.master === net.bridge;
      out.push({
        kind: macvtap ? "link" : "tap",
        name: n.name,
        state: !l ? "missing" : attached ? "present" : "drifted",
        detail: `${n.vm} nic ${n.index} ${macvtap ? "macvtap on" : "on"} ${want}${l && !attached ? " (detached)" : ""}`,
      });
    }
  }
  return out;
}

export function renderStatusTable(s: FullStatus): string {
  const rows = s.objects.map((o) => [o.kind, o.name, o.state, o.detail]);
  const head = ["KIND", "NAME", "STATE", "DETAIL"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join("  ");
  return `lab ${s.lab}${s.netns ? ` (netns ${s.netns})` : ""}: ${s.ok ? "healthy" : "drift"}\n${[head, ...rows].map(line).join("\n")}\n`;
}
