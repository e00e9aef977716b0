// `qnet status`: the lab's plan against the host, reported per object (present, missing or drifted):
// exactly the objects `qnet up` would change are the ones not present. Running VMs add their addresses.
import { observeAndPlan, planEnv } from "../engine/engine.js";
import { UserError } from "../errors.js";
import { detectFacts } from "../host/facts.js";
import { netnsExists } from "../host/netns.js";
import { ProcessRunner } from "../host/runner.js";
import { readLabRecord, recordNetns } from "../host/state.js";
import { type BootRecord, readBootRecord } from "../host/vm.js";
import type { ObjectState } from "../kinds/types.js";
import { describeAddresses, type NicAddresses, vmAddresses } from "./vm-addresses.js";

export interface StatusObject {
  /** The resource kind: netns, module, uplink, bridge, address, tap, macvtap, sysctl, nft-table, ... */
  kind: string;
  name: string;
  state: ObjectState;
  /** What it is (present), or what differs (missing, drifted). */
  detail: string;
  /** Per NIC (VM objects only): null when the VM is not running or its agent did not answer. */
  addresses?: NicAddresses[] | null;
  /** VM objects only: how it last started (from a template or a cold boot), null when unknown. */
  boot?: BootRecord | null;
}

/** Time for each VM's guest agent to report its addresses (VMs are asked in parallel). */
const AGENT_TIMEOUT_MS = 2_500;

export interface FullStatus {
  lab: string;
  stateDir: string;
  netns: string | null;
  objects: StatusObject[];
  /** Every object present: `qnet up` would change nothing. */
  ok: boolean;
}

export async function fullStatus(stateDir: string): Promise<FullStatus> {
  const rec = readLabRecord(stateDir);
  if (!rec) {
    throw new UserError(
      `no lab record (lab.json) in ${stateDir}`,
      "the lab is not up; `qnet down` cleans up a half-made one",
    );
  }
  const netns = recordNetns(rec);
  const head = { lab: rec.lab.name, stateDir, netns };
  if (netns && !netnsExists(netns)) {
    // The lab's links, dnsmasq and VMs lived in it: they went with it (VMs hold it while they run).
    return {
      ...head,
      ok: false,
      objects: [
        {
          kind: "netns",
          name: netns,
          state: "missing",
          detail: `the namespace is gone (deleted by hand?), and the lab's objects in it with it; \`qnet down ${rec.lab.name}\` cleans up the rest, \`qnet up\` builds the lab again`,
        },
      ],
    };
  }
  const env = planEnv(rec.lab, {
    stateDir,
    netns,
    vms: rec.options?.noVms !== true,
    machine: detectFacts(),
  });
  const { plan } = await observeAndPlan(env, new ProcessRunner(netns));
  const objects: StatusObject[] = await Promise.all(
    plan.verdicts.map(async (v): Promise<StatusObject> => {
      const o: StatusObject = { kind: v.kind, name: v.name, state: v.state, detail: v.detail };
      if (v.kind !== "vm") return o;
      const vm = rec.lab.vms.find((x) => x.name === v.name)!;
      o.addresses = null;
      o.boot = readBootRecord(stateDir, vm.name);
      if (v.state === "missing") return o;
      if (o.boot)
        o.detail += o.boot.mode === "template" ? ", started from a template" : ", cold boot";
      const a = await vmAddresses(stateDir, vm, AGENT_TIMEOUT_MS);
      if (a.ok) {
        o.addresses = a.nics;
        o.detail += `; ${describeAddresses(a.nics)}`;
      } else o.detail += "; agent not answering";
      return o;
    }),
  );
  return { ...head, objects, ok: objects.every((o) => o.state === "present") };
}

export function renderStatusTable(s: FullStatus): string {
  const rows = s.objects.map((o) => [o.kind, o.name, o.state, o.detail]);
  const head = ["KIND", "NAME", "STATE", "DETAIL"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join("  ");
  return `lab ${s.lab}${s.netns ? ` (netns ${s.netns})` : ""}: ${s.ok ? "healthy" : "drift"}\n${[head, ...rows].map(line).join("\n")}\n`;
}
