// `qnet plan`: the resolved lab, the host changes and every VM's argv, for people and for programs.
import { observeAndPlan, planEnv } from "../engine/engine.js";
import { formatArgv, UserError } from "../errors.js";
import { ProcessRunner } from "../host/runner.js";
import { describeImpairment } from "../model/impair.js";
import type { HostFacts, Lab } from "../model/lab.js";
import { vmRuntime } from "../model/paths.js";
import { builtinAppend } from "../render/guest-boot.js";
import { networkArgs, vmArgv } from "../render/qemu-args.js";

/** One planned host change, as shown by `plan` (the host engine's actions map onto this). */
export interface PlannedChange {
  what: string;
  reason: string;
  /** The object changed, as `qnet status` names it: its kind and name. */
  kind: string;
  object: string;
}

export interface PlanView {
  lab: Lab;
  stateDir: string;
  changes: PlannedChange[];
  notes: string[];
  vms: { name: string; network: string[]; argv: string[] }[];
}

/**
 * What `qnet up` would change on this host, each with its reason (the engine's plan against the host as it
 * is now, VMs included), and notes. Throws, as `up` would, when a change is refused before it starts.
 */
export async function hostChanges(
  lab: Lab,
  opts: { stateDir: string; netns: string | null; facts: HostFacts; cold?: boolean },
): Promise<{ changes: PlannedChange[]; notes: string[] }> {
  const env = planEnv(lab, {
    stateDir: opts.stateDir,
    netns: opts.netns,
    vms: true,
    machine: opts.facts,
    cold: opts.cold === true,
  });
  const { plan } = await observeAndPlan(env, new ProcessRunner(opts.netns));
  if (plan.problems.length > 0)
    throw new UserError(`${plan.problems.join("; ")}; nothing was changed`);
  const changes = plan.verdicts.flatMap((v) =>
    v.actions.map((a) => ({ what: a.what, reason: a.reason, kind: v.kind, object: v.name })),
  );
  return { changes, notes: plan.notes };
}

/** Placeholders for the built-in guest's files, which `up` builds into the cache. */
export const BUILTIN_KERNEL = "<built-in guest kernel>";
export const BUILTIN_INITRD = "<built-in guest initrd>";

export function planView(
  lab: Lab,
  facts: HostFacts,
  stateDir: string,
  changes: PlannedChange[] = [],
  notes: string[] = [],
): PlanView {
  return {
    lab,
    stateDir,
    changes,
    notes,
    vms: lab.vms.map((vm) => ({
      name: vm.name,
      network: networkArgs(lab, vm, facts),
      argv: vmArgv(
        lab,
        vm,
        facts,
        vmRuntime(stateDir, vm, {
          kernel: BUILTIN_KERNEL,
          initrd: BUILTIN_INITRD,
          append: builtinAppend(lab, vm),
        }),
      ),
    })),
  };
}

export function renderPlanText(p: PlanView): string {
  const out: string[] = [
    `lab ${p.lab.name}${p.lab.netns ? ` in network namespace ${p.lab.netns}` : ""}`,
    `state: ${p.stateDir}`,
    "",
  ];
  out.push("networks:");
  for (const n of p.lab.networks) {
    if (n.type === "user") {
      out.push(
        `  ${n.name}  user  ${n.subnet}  gateway ${n.hostAddr}  dns ${n.dns}${n.restrict ? "  restricted" : ""}`,
      );
    } else if (n.type === "bridge") {
      out.push(
        `  ${n.name}  bridge ${n.bridge}  ${n.subnet}  gateway ${n.gateway ?? "none"}  dhcp ${n.dhcp ? "on" : "off"}  nat ${n.nat ? `on${n.uplink ? ` via ${n.uplink}` : ""}` : "off"}`,
      );
    } else {
      out.push(`  ${n.name}  bridged ${n.bridge} on ${n.uplink}  mode ${n.mode}`);
    }
    if (n.type !== "bridged") {
      for (const f of n.forwards) {
        out.push(
          `    forward ${f.proto} ${f.hostAddr}:${f.hostPort} -> ${f.vm ?? "guest"}:${f.guestPort}`,
        );
      }
    }
  }
  out.push("", "vms:");
  for (const vm of p.lab.vms) {
    const guest =
      vm.guest.kind === "builtin"
        ? "built-in guest"
        : vm.guest.kind === "kernel"
          ? `kernel ${vm.guest.kernel}`
          : vm.guest.kind === "image"
            ? `image ${vm.guest.image.kind === "named" ? vm.guest.image.name : vm.guest.image.url}`
            : `disk ${vm.guest.disk}`;
    out.push(`  ${vm.name}  ${vm.cpus} vCPU  ${vm.memory} MiB  ${guest}`);
    for (const nic of vm.nics) {
      out.push(
        `    nic${nic.index}  ${nic.network}  ${nic.mac}  ${nic.ip ?? (nic.networkType === "bridged" ? "DHCP from the LAN" : "-")}${nic.tap ? `  tap ${nic.tap}` : ""}  ${nic.model}${nic.impair ? `  impaired: ${describeImpairment(nic.impair)} (each direction)` : ""}`,
      );
    }
  }
  out.push("", "host changes:");
  if (p.changes.length === 0) out.push("  none");
  for (const c of p.changes) out.push(`  + ${c.what}`, `      because ${c.reason}`);
  for (const n of p.notes) out.push(`  note: ${n}`);
  out.push("", "qemu command lines:");
  for (const vm of p.vms) out.push(`  ${vm.name}:`, `    ${formatArgv(vm.argv)}`);
  return `${out.join("\n")}\n`;
}
