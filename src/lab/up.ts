// `qnet up`: bring a lab up in named phases (namespace, links, LAN uplink, services, VMs, readiness);
// on failure undo what this run did, newest first, unless the user asked to keep it.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { EXIT, UserError } from "../errors.js";
import { buildGuest } from "../guest/build.js";
import { applyHostNetwork } from "../host/apply.js";
import { writeCloudInitSeed } from "../host/cloud-init-seed.js";
import type { LabContext } from "../host/context.js";
import { detectFacts } from "../host/facts.js";
import { waitForAgent } from "../host/guest-agent.js";
import { Journal } from "../host/journal.js";
import { ensureNetns } from "../host/netns.js";
import { ProcessRunner } from "../host/runner.js";
import { openLabState, readLabRecord, recordNetns, saveLabRecord } from "../host/state.js";
import { runUndos } from "../host/undo.js";
import "../host/undo-handlers.js";
import { livePid } from "../host/pidfile.js";
import { applyServices } from "../host/services.js";
import { applyBridgedNetworks } from "../host/uplink.js";
import { launchVm, vmProcessTag, vmStopUndo } from "../host/vm.js";
import type { Lab } from "../model/lab.js";
import { builtinAppend } from "./guest-boot.js";
import { vmFiles, vmRuntime } from "./paths.js";

export interface UpOptions {
  stateRoot?: string;
  /** Run the lab in this namespace (overrides the file's `netns`). */
  netns?: string | null;
  /** Bring up only the host side; the user starts QEMU with `qnet args`. */
  noVms?: boolean;
  /** Seconds to wait for every guest agent (default 120). */
  waitSeconds?: number;
  /** Keep what this run made when it fails (default: roll it back). */
  keepOnFailure?: boolean;
  /** `bridged` networks: revert the uplink move unless confirmed within this many seconds. */
  confirmSeconds?: number;
  /** Resolves when the user confirms (e.g. presses Enter); `qnet confirm LAB` works too. */
  confirmation?: Promise<unknown>;
  /** The topology file, for the record. */
  file?: string | null;
  progress?: (msg: string) => void;
}

export interface UpResult {
  lab: string;
  stateDir: string;
  netns: string | null;
  /** What changed, one line each; empty when the lab was already up as described. */
  changes: string[];
  notes: string[];
  vms: { name: string; started: boolean; ready: boolean }[];
}

export async function up(lab: Lab, opts: UpOptions = {}): Promise<UpResult> {
  const progress = opts.progress ?? (() => {});
  const netns = opts.netns ?? lab.netns;
  const state = await openLabState({
    ...(opts.stateRoot ? { stateRoot: opts.stateRoot } : {}),
    lab: lab.name,
  });
  try {
    const previous = readLabRecord(state.dir);
    if (previous && Journal.read(state.dir).length > 0 && recordNetns(previous) !== netns) {
      const where = (ns: string | null) =>
        ns ? `network namespace ${ns}` : "the host's namespace";
      throw new UserError(
        `lab ${lab.name} is up in ${where(recordNetns(previous))}, not ${where(netns)}`,
        `run \`qnet down ${lab.name}\` first, or use the same --netns`,
        EXIT.usage,
      );
    }
    const journal = new Journal(state.dir);
    const startSeq = Journal.read(state.dir).reduce((m, e) => Math.max(m, e.seq), 0);
    saveLabRecord(state.dir, lab, { netns, noVms: !!opts.noVms }, opts.file ?? null);
    const ctx: LabContext = {
      lab,
      stateDir: state.dir,
      runner: new ProcessRunner(netns),
      journal,
      facts: detectFacts(),
      progress,
    };
    const result: UpResult = {
      lab: lab.name,
      stateDir: state.dir,
      netns,
      changes: [],
      notes: [],
      vms: [],
    };
    try {
      await runPhases(ctx, opts, result);
    } catch (e) {
      if (opts.keepOnFailure) {
        progress(
          `failed; keeping what was made (--keep-on-failure). \`qnet down ${lab.name}\` removes it`,
        );
      } else {
        progress("failed; rolling back what this run made");
        const mine = Journal.read(state.dir)
          .filter((e) => e.seq > startSeq)
          .sort((a, b) => b.seq - a.seq);
        const r = await runUndos(mine, { runner: ctx.runner, stateDir: state.dir });
        for (const err of r.errors) progress(`rollback: ${err.message}`);
        // A first run rolled back cleanly leaves nothing: not even its state directory.
        if (startSeq === 0 && r.errors.length === 0)
          rmSync(state.dir, { recursive: true, force: true });
      }
      throw e;
    }
    return result;
  } finally {
    state.release();
  }
}

async function runPhases(ctx: LabContext, opts: UpOptions, result: UpResult): Promise<void> {
  const { lab, progress } = ctx;
  if (ctx.runner.netns) {
    const ns = await ensureNetns({
      name: ctx.runner.netns,
      journal: ctx.journal,
      runner: ctx.runner,
      progress,
    });
    if (ns.created) result.changes.push(`created network namespace ${ctx.runner.netns}`);
  }

  progress("host network: observing and applying");
  const host = await applyHostNetwork(ctx);
  result.changes.push(...host.actions.map((a) => a.what));
  // A VM still running on a tap that was deleted and is now made anew holds the dead one: restart it.
  const madeLinks = new Set(
    host.actions.flatMap((a) => (a.undo?.kind === "link" ? [a.undo.name] : [])),
  );
  const reattach = new Set(
    lab.vms.filter((v) => v.nics.some((n) => n.tap && madeLinks.has(n.tap))).map((v) => v.name),
  );

  if (lab.networks.some((n) => n.type === "bridged")) {
    progress("LAN bridging: moving uplinks");
    const b = await applyBridgedNetworks(ctx, {
      ...(opts.confirmSeconds !== undefined ? { confirmSeconds: opts.confirmSeconds } : {}),
      ...(opts.confirmation ? { confirmation: opts.confirmation } : {}),
    });
    if (b.changed) result.changes.push("moved the LAN uplink onto its bridge");
    result.notes.push(...b.notes);
  }

  if (lab.networks.some((n) => n.type === "bridge")) {
    progress("network services: DHCP/DNS, NAT, forwards, firewall");
    const s = await applyServices(ctx);
    if (s.changed) result.changes.push("network services (dnsmasq, nftables) updated");
    result.notes.push(...s.notes);
  }

  if (opts.noVms || lab.vms.length === 0) return;
  await startVms(ctx, opts, result, reattach);
}

async function startVms(
  ctx: LabContext,
  opts: UpOptions,
  result: UpResult,
  reattach: Set<string>,
): Promise<void> {
  const { lab, progress } = ctx;
  const builtinVms = lab.vms.filter((v) => v.guest.kind === "builtin");
  let builtin = { kernel: "", initrd: "" };
  if (builtinVms.length > 0) {
    const models = [...new Set(builtinVms.flatMap((v) => v.nics.map((n) => n.model)))];
    progress(`built-in guest: building for ${models.join(", ")} (cached after the first build)`);
    const g = await buildGuest({ nicModels: models, onProgress: (m) => progress(`  ${m}`) });
    builtin = { kernel: g.kernel, initrd: g.initrd };
  }
  mkdirSync(join(ctx.stateDir, "vm"), { recursive: true, mode: 0o700 });
  const started: Record<string, boolean> = {};
  // Launch in parallel: QEMU's start-up is mostly waiting, and each VM boots on its own. Every launch
  // settles before a failure is reported, so a rollback never races a QEMU still being started.
  const launches = await Promise.allSettled(
    lab.vms.map(async (vm) => {
      if (vm.guest.kind === "disk")
        await writeCloudInitSeed(
          lab,
          vm,
          vmFiles(ctx.stateDir, vm.name).seed,
          join(ctx.stateDir, "vm"),
        );
      const rt = vmRuntime(ctx.stateDir, vm, { ...builtin, append: builtinAppend(lab, vm) });
      const f = vmFiles(ctx.stateDir, vm.name);
      const tag = vmProcessTag(lab.name, vm.name);
      if (reattach.has(vm.name) && livePid(f.pidfile, tag) !== null) {
        progress(`VM ${vm.name}: its tap was recreated; restarting it to attach the new one`);
        const r = await runUndos(
          [{ what: `stop VM ${vm.name}`, undo: vmStopUndo(ctx.stateDir, lab.name, vm.name) }],
          { runner: ctx.runner, stateDir: ctx.stateDir },
        );
        if (r.errors.length) throw r.errors[0];
      }
      started[vm.name] = await launchVm(ctx, vm, rt);
      progress(`VM ${vm.name}: ${started[vm.name] ? "started" : "already running"}`);
    }),
  );
  const failed = launches.find((l): l is PromiseRejectedResult => l.status === "rejected");
  if (failed) throw failed.reason;
  for (const [name, s] of Object.entries(started)) if (s) result.changes.push(`started VM ${name}`);
  const waitMs = (opts.waitSeconds ?? 120) * 1000;
  progress(`waiting for ${lab.vms.length} guest agent(s) (up to ${waitMs / 1000} s)`);
  await Promise.all(
    lab.vms.map(async (vm) => {
      const f = vmFiles(ctx.stateDir, vm.name);
      try {
        await waitForAgent(f.qga, { timeoutMs: waitMs, intervalMs: 200 });
      } catch (e) {
        throw new UserError(
          `VM ${vm.name} did not answer its guest agent within ${waitMs / 1000} s`,
          `its console log is ${f.serialLog}; QEMU's output is ${f.stderrLog}; raise --wait on a slow machine`,
          undefined,
          { cause: e },
        );
      }
      progress(`VM ${vm.name}: ready`);
    }),
  );
  result.vms = lab.vms.map((v) => ({ name: v.name, started: !!started[v.name], ready: true }));
}
