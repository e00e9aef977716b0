// `qnet impair`: change a running lab's impairments live (journaled, kept in the lab's state directory
// so status and a later `up` agree with them), and list the impairments in force.
import { basename, dirname } from "node:path";
import {
  applyActions,
  checkPrograms,
  observeAndPlan,
  planEnv,
  rollback,
} from "../engine/engine.js";
import { EXIT, UserError } from "../errors.js";
import { detectFacts } from "../host/facts.js";
import { readLiveImpairments, writeLiveImpairments } from "../host/impair-live.js";
import { Journal } from "../host/journal.js";
import { ProcessRunner } from "../host/runner.js";
import { openLabState, readLabRecord, recordNetns } from "../host/state.js";
import { ifbName } from "../kinds/ifb.js";
import type { KindName } from "../kinds/types.js";
import {
  checkImpairSpec,
  describeImpairment,
  IMPAIR_FIELDS,
  type Impairment,
  type ImpairSpec,
  impairmentSpec,
  impairRefusal,
  isEmpty,
  parseImpairSpec,
  sortKeys,
} from "../model/impair.js";
import { type LiveImpairments, nicKey, withLiveImpairments } from "../model/impair-live.js";
import type { Lab, Nic, Vm } from "../model/lab.js";

const KINDS: ReadonlySet<KindName> = new Set(["ifb", "impair"]);

export interface ImpairChange extends ImpairSpec {
  /** Remove every impairment of the NIC (kept as "none" until --reset or down). */
  clear?: boolean;
  /** Forget the live change: the topology's impairment again. */
  reset?: boolean;
}

export interface NicImpairment {
  vm: string;
  nic: number;
  network: string;
  tap: string;
  ifb: string;
  /** What the topology file says. */
  topology: string;
  /** What is in force: the topology's, or a live change. */
  inForce: string;
  origin: "topology" | "live";
  impairment: Impairment | null;
  /** On the host: present, missing or drifted (as `qnet status` says). */
  state: string;
  detail: string;
}

function record(stateDir: string) {
  const rec = readLabRecord(stateDir);
  if (!rec)
    throw new UserError(
      `no lab record in ${stateDir}`,
      "is the lab up? see `qnet status`",
      EXIT.usage,
    );
  return rec;
}

/** The VM and NIC a `VM[:NIC]` target names; the NIC may be left out when the VM has one tap NIC. */
export function findNic(lab: Lab, target: string): { vm: Vm; nic: Nic } {
  const m = /^([^:]+)(?::(\d+))?$/.exec(target);
  const vm = m ? lab.vms.find((v) => v.name === m[1]) : undefined;
  if (!m || !vm)
    throw new UserError(
      `lab ${lab.name} has no VM named "${m?.[1] ?? target}"`,
      `write VM or VM:NIC; VMs: ${lab.vms.map((v) => v.name).join(", ") || "none"}`,
      EXIT.usage,
    );
  if (m[2] === undefined) {
    const taps = vm.nics.filter((n) => n.tap !== null && n.networkType !== "user");
    if (vm.nics.length === 1) return { vm, nic: vm.nics[0]! };
    if (taps.length === 1) return { vm, nic: taps[0]! };
    throw new UserError(
      `VM ${vm.name} has ${vm.nics.length} NICs: say which one`,
      `write ${vm.name}:N with N one of ${vm.nics.map((n) => `${n.index} (${n.network})`).join(", ")}`,
      EXIT.usage,
    );
  }
  const nic = vm.nics.find((n) => n.index === Number(m[2]));
  if (!nic)
    throw new UserError(
      `VM ${vm.name} has no NIC ${m[2]}`,
      `its NICs: ${vm.nics.map((n) => `${n.index} (${n.network})`).join(", ") || "none"}`,
      EXIT.usage,
    );
  return { vm, nic };
}

/** Why this NIC cannot be impaired, or null. */
function refusal(lab: Lab, nic: Nic): string | null {
  const net = lab.networks.find((n) => n.name === nic.network);
  return net ? impairRefusal(net) : null;
}

/** The NIC's impairment after a change: the given fields over what is in force, checked as the file's. */
export function changedImpairment(
  current: Impairment | undefined,
  change: ImpairChange,
): Impairment {
  if (change.clear) return {};
  const given: ImpairSpec = {};
  for (const f of IMPAIR_FIELDS) if (change[f] !== undefined) given[f] = change[f];
  const bad = checkImpairSpec(given).filter(
    (f) => !/give `delay`|larger than the delay/.test(f.message),
  );
  if (bad.length > 0)
    throw new UserError(
      bad.map((f) => `--${f.field}: ${f.message}`).join("; "),
      "for example: --delay 40ms --jitter 5ms --loss 1% --rate 10mbit",
      EXIT.usage,
    );
  const merged = sortKeys({ ...(current ?? {}), ...parseImpairSpec(given) });
  // The combination is checked as a file's would be (jitter needs a delay, ...).
  const spec = Object.fromEntries(impairmentSpec(merged)) as ImpairSpec;
  const combo = checkImpairSpec(spec);
  if (combo.length > 0)
    throw new UserError(
      combo.map((f) => `--${f.field}: ${f.message}`).join("; "),
      "--clear removes every impairment of the NIC",
      EXIT.usage,
    );
  return merged;
}

export interface ImpairResult {
  lab: string;
  vm: string;
  nic: number;
  tap: string;
  before: string;
  after: string;
  origin: "topology" | "live";
  changes: string[];
}

/** Change one NIC's impairment on a running lab: journaled like `up`, rolled back on failure. */
export async function impairNic(
  stateDir: string,
  target: string,
  change: ImpairChange,
  progress: (m: string) => void = () => {},
): Promise<ImpairResult> {
  const rec0 = record(stateDir);
  const state = await openLabState({ stateRoot: dirname(stateDir), lab: basename(stateDir) });
  try {
    const rec = record(stateDir);
    const previous = readLiveImpairments(stateDir);
    const inForce = withLiveImpairments(rec.lab, previous);
    const { vm, nic } = findNic(inForce, target);
    const why = refusal(rec.lab, nic);
    if (why)
      throw new UserError(
        `${vm.name} nic ${nic.index} is on network ${nic.network}: ${why}`,
        undefined,
        EXIT.usage,
      );
    const key = nicKey(vm.name, nic.index);
    const live: LiveImpairments = { nics: { ...(previous?.nics ?? {}) } };
    if (change.reset) delete live.nics[key];
    else live.nics[key] = changedImpairment(nic.impair, change);
    const netns = recordNetns(rec);
    const runner = new ProcessRunner(netns);
    const env = planEnv(rec.lab, {
      stateDir,
      netns,
      vms: rec.options?.noVms !== true,
      machine: detectFacts(),
    });
    // planEnv read the file as it was: plan against the new live impairments.
    const lab = withLiveImpairments(rec.lab, live);
    const { obs, plan } = await observeAndPlan({ ...env, lab }, runner, KINDS);
    if (plan.problems.length > 0)
      throw new UserError(`${plan.problems.join("; ")}; nothing was changed`);
    checkPrograms(plan.actions);
    const startSeq = Journal.read(stateDir).reduce((m, e) => Math.max(m, e.seq), 0);
    writeLiveImpairments(stateDir, live);
    try {
      await applyActions(plan.actions, {
        lab,
        stateDir,
        runner,
        journal: new Journal(stateDir),
        facts: env.machine,
        obs,
        options: {},
        progress,
      });
    } catch (e) {
      writeLiveImpairments(stateDir, previous ?? { nics: {} });
      for (const err of await rollback(stateDir, runner, startSeq))
        progress(`rollback: ${err.message}`);
      throw e;
    }
    const after = withLiveImpairments(rec.lab, live);
    const now = after.vms.find((v) => v.name === vm.name)!.nics[nic.index]!;
    return {
      lab: rec0.lab.name,
      vm: vm.name,
      nic: nic.index,
      tap: nic.tap ?? "",
      before: describeImpairment(nic.impair),
      after: describeImpairment(now.impair),
      origin: Object.hasOwn(live.nics, key) ? "live" : "topology",
      changes: plan.actions.map((a) => a.what),
    };
  } finally {
    state.release();
  }
}

/** Every NIC that can be impaired, with what is in force and whether the host agrees. */
export async function listImpairments(stateDir: string): Promise<NicImpairment[]> {
  const rec = record(stateDir);
  const live = readLiveImpairments(stateDir);
  const netns = recordNetns(rec);
  const env = planEnv(rec.lab, {
    stateDir,
    netns,
    vms: rec.options?.noVms !== true,
    machine: detectFacts(),
  });
  const { plan } = await observeAndPlan(env, new ProcessRunner(netns), KINDS);
  const out: NicImpairment[] = [];
  for (const vm of env.lab.vms) {
    const file = rec.lab.vms.find((v) => v.name === vm.name)!;
    for (const nic of vm.nics) {
      if (!nic.tap || refusal(rec.lab, nic)) continue;
      const v = plan.verdicts.find((x) => x.kind === "impair" && x.name === nic.tap);
      const origin =
        live && Object.hasOwn(live.nics, nicKey(vm.name, nic.index)) ? "live" : "topology";
      out.push({
        vm: vm.name,
        nic: nic.index,
        network: nic.network,
        tap: nic.tap,
        ifb: ifbName(rec.lab.name, vm.name, nic.index),
        topology: describeImpairment(file.nics[nic.index]?.impair),
        inForce: describeImpairment(nic.impair),
        origin,
        impairment: isEmpty(nic.impair) ? null : nic.impair!,
        state: v ? v.state : "present",
        detail: v ? v.detail : "no impairment",
      });
    }
  }
  return out;
}

export function renderImpairTable(rows: NicImpairment[]): string {
  const table = rows.map((r) => [
    `${r.vm}:${r.nic}`,
    r.network,
    r.tap,
    r.inForce,
    r.origin === "live" ? `live (topology: ${r.topology})` : "topology",
    r.state,
  ]);
  const head = ["NIC", "NETWORK", "TAP", "IN FORCE (each direction)", "FROM", "HOST"];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join("  ");
  return `${[head, ...table].map(line).join("\n")}\n`;
}
