// QEMU processes of a lab: launch detached in the lab's namespace (macvtaps passed as open files), stop,
// resume, wait for the guest agents; and the run state of one VM.
import { spawn } from "node:child_process";
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { UserError } from "../errors.js";
import { type BuiltGuest, buildGuest } from "../guest/build.js";
import { builtinSshFwCfg } from "../guest/ssh.js";
import type { Action } from "../kinds/types.js";
import type { VmPayload } from "../kinds/vm.js";
import type { HostFacts, Lab, Vm } from "../model/lab.js";
import { overlayPath, vmFiles, vmRuntime } from "../model/paths.js";
import { builtinAppend } from "../render/guest-boot.js";
import type { VmRuntime } from "../render/qemu-args.js";
import { qemuNameArg, vmArgv } from "../render/qemu-args.js";
import { builtinSshFiles } from "../ssh/builtin.js";
import { type LabSshKey, labSshKey } from "../ssh/keys.js";
import { baseImage } from "./disks.js";
import { writeFileAtomic } from "./files.js";
import { waitForAgent } from "./guest-agent.js";
import type { Journal } from "./journal.js";
import { livePid } from "./pidfile.js";
import { undoProcess } from "./process.js";
import { QmpClient, qmpQueryStatus } from "./qmp.js";
import { inNetns, type Runner } from "./runner.js";
import { qnetDataDir } from "./state.js";
import { ensureTemplate, restoreFromTemplate, type Template } from "./template.js";

/** The string in QEMU's argv (`-name …,process=`) that proves a PID is this lab's VM. */
export const vmProcessTag = qemuNameArg;

export type VmState = "running" | "paused" | "stopped" | "unknown";

export interface VmStatus {
  name: string;
  state: VmState;
  pid: number | null;
  detail: string;
}

export async function vmStatus(stateDir: string, lab: string, vm: string): Promise<VmStatus> {
  const f = vmFiles(stateDir, vm);
  const pid = livePid(f.pidfile, vmProcessTag(lab, vm));
  if (pid === null) return { name: vm, state: "stopped", pid: null, detail: "no QEMU process" };
  try {
    const s = await qmpQueryStatus(f.qmp, 3_000);
    return { name: vm, state: s.running ? "running" : "paused", pid, detail: `QEMU ${s.status}` };
  } catch (e) {
    return {
      name: vm,
      state: "unknown",
      pid,
      detail: `QMP did not answer: ${(e as Error).message}`,
    };
  }
}

function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/**
 * Open a macvtap's character device. /dev/tap<ifindex> is used when it is that device (ifindexes are per
 * namespace, so another namespace's macvtap may own the name); otherwise a private node is made in the
 * state directory, opened and removed.
 */
async function openMacvtap(runner: Runner, name: string, stateDir: string): Promise<number> {
  const r = await runner.run(["ip", "-json", "link", "show", "dev", name]);
  const ifindex = (JSON.parse(r.stdout) as { ifindex: number }[])[0]!.ifindex;
  const dev = (
    await runner.run(["cat", `/sys/class/net/${name}/macvtap/tap${ifindex}/dev`])
  ).stdout.trim();
  const [major, minor] = dev.split(":").map(Number) as [number, number];
  const rdev = (major << 8) | (minor & 0xff) | ((minor & ~0xff) << 12);
  const shared = `/dev/tap${ifindex}`;
  try {
    if (statSync(shared).rdev === rdev) return openSync(shared, constants.O_RDWR);
  } catch {
    // not there (no devtmpfs): make our own below
  }
  const own = join(stateDir, "vm", `${name}.dev`);
  rmSync(own, { force: true });
  await runner.run(["mknod", "-m", "0600", own, "c", String(major), String(minor)], {
    hostNamespace: true,
  });
  try {
    return openSync(own, constants.O_RDWR);
  } finally {
    rmSync(own, { force: true });
  }
}

/** Files QEMU gets as fd 3+i for NIC i (macvtap NICs); null entries are not passed. */
async function macvtapFds(lab: Lab, vm: Vm, runner: Runner, stateDir: string) {
  const nets = new Map(lab.networks.map((n) => [n.name, n]));
  const fds: (number | null)[] = [];
  for (const nic of vm.nics) {
    const net = nets.get(nic.network);
    fds.push(
      net?.type === "bridged" && net.mode === "macvtap"
        ? await openMacvtap(runner, nic.tap!, stateDir)
        : null,
    );
  }
  return fds;
}

export interface VmContext {
  lab: Lab;
  stateDir: string;
  runner: Runner;
  journal: Journal;
  facts: HostFacts;
  progress: (msg: string) => void;
}

/** How a VM last started, kept beside it for `status`. */
export interface BootRecord {
  mode: "template" | "cold";
  /** Why it booted cold (ineligible, or the restore failed). */
  reason: string | null;
  /** From launch to ready. */
  ms: number;
}

export function readBootRecord(stateDir: string, vm: string): BootRecord | null {
  try {
    return JSON.parse(readFileSync(vmFiles(stateDir, vm).boot, "utf8")) as BootRecord;
  } catch {
    return null;
  }
}

/**
 * Launch one VM detached (-daemonize) inside the lab's namespace (the engine journaled how to stop it).
 * QEMU's own output goes to <vm>.qemu.log.
 */
async function launchVm(ctx: VmContext, vm: Vm, rt: VmRuntime): Promise<void> {
  const f = vmFiles(ctx.stateDir, vm.name);
  mkdirSync(dirname(f.pidfile), { recursive: true, mode: 0o700 });
  const argv = inNetns(ctx.runner.netns, vmArgv(ctx.lab, vm, ctx.facts, rt));
  const nicFds = await macvtapFds(ctx.lab, vm, ctx.runner, ctx.stateDir);
  const out = openSync(f.stderrLog, "w", 0o600);
  try {
    const stdio = ["ignore", out, out, ...nicFds.map((fd) => fd ?? "ignore")] as const;
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [...stdio] });
    const exitCode = await new Promise<number | null>((resolve) => {
      child.on("error", () => resolve(null));
      child.on("exit", (code) => resolve(code));
    });
    if (exitCode !== 0 || !existsSync(f.pidfile)) {
      throw new UserError(
        `VM ${vm.name} failed to start (QEMU exit code ${exitCode ?? "none"}):\n${tail(f.stderrLog) || "(no output)"}`,
        `full QEMU output: ${f.stderrLog}`,
      );
    }
    // QEMU's -daemonize sets umask 027 before it creates its sockets: tighten them to owner-only
    // (they sit in the 0700 state directory meanwhile).
    for (const path of [f.qmp, f.qga, f.serial, f.serialLog]) {
      try {
        chmodSync(path, 0o600);
      } catch {
        // created later by QEMU (the console log appears with the first output)
      }
    }
  } finally {
    closeSync(out);
    for (const fd of nicFds) if (fd !== null) closeSync(fd);
  }
}

async function resume(qmp: string): Promise<void> {
  const c = await QmpClient.connect(qmp, { timeoutMs: 5_000 });
  try {
    await c.execute("cont");
  } finally {
    c.close();
  }
}

/** Stop a VM qnet started (QMP quit, then signals), by its pidfile and process tag. */
function stopVm(ctx: VmContext, vm: Vm): Promise<void> {
  const f = vmFiles(ctx.stateDir, vm.name);
  return undoProcess({
    kind: "process",
    pidfile: f.pidfile,
    match: vmProcessTag(ctx.lab.name, vm.name),
    qmp: f.qmp,
  });
}

/**
 * Start, restart or resume the VMs of a run in parallel. A VM whose layout allows it starts from a template
 * of the built-in guest (made on first use) and is configured through its agent; any failure there stops it
 * and boots it cold. Returns once every VM's guest agent answers.
 */
export async function applyVms(
  actions: Action[],
  ctx: VmContext,
  opts: { waitSeconds?: number },
): Promise<void> {
  const { lab, progress } = ctx;
  const todo = actions.map((a) => a.payload as VmPayload);
  const booting = todo.filter((p) => p.mode !== "resume").map((p) => p.vm);
  let guest: BuiltGuest | null = null;
  if (booting.some((v) => v.guest.kind === "builtin")) {
    // The guest is built for every NIC model of the lab: one cached build serves all its VMs.
    const models = [...new Set(lab.vms.flatMap((v) => v.nics.map((n) => n.model)))];
    progress(`built-in guest: building for ${models.join(", ")} (cached after the first build)`);
    guest = await buildGuest({ nicModels: models, onProgress: (m) => progress(`  ${m}`) });
  }
  mkdirSync(join(ctx.stateDir, "vm"), { recursive: true, mode: 0o700 });
  const waitMs = (opts.waitSeconds ?? 120) * 1000;
  const templates = new Map<string, Promise<Template>>();
  // The lab's login key, made once (VMs start in parallel).
  let loginKey: Promise<LabSshKey> | undefined;
  /** The runtime of `vm`: its guest (built-in, image or its own), its disks, its SSH keys. */
  const runtime = async (vm: Vm): Promise<VmRuntime> => {
    const image =
      vm.guest.kind === "image"
        ? {
            boot: (await baseImage(vm.guest.image, progress)).boot,
            overlay: overlayPath(ctx.stateDir, qnetDataDir(), lab.name, vm),
          }
        : undefined;
    const rt = vmRuntime(
      ctx.stateDir,
      vm,
      { kernel: guest?.kernel ?? "", initrd: guest?.initrd ?? "", append: builtinAppend(lab, vm) },
      image,
    );
    if (vm.guest.kind !== "builtin" || !guest?.ssh) return rt;
    // The built-in guest's SSH server: its pinned host key and the lab's key, as files over fw_cfg.
    loginKey ??= labSshKey(ctx.stateDir, lab.name, lab.sshKey ?? undefined);
    const files = await builtinSshFiles(ctx.stateDir, vm.name, [(await loginKey).publicKey]);
    return { ...rt, fwCfg: builtinSshFwCfg(files) };
  };
  const cold = async (vm: Vm) => launchVm(ctx, vm, await runtime(vm));
  const instant = async (vm: Vm) => {
    const template = await ensureTemplate({ ...ctx, vm, guest: guest!, memo: templates });
    const f = vmFiles(ctx.stateDir, vm.name);
    const rt = await runtime(vm);
    await launchVm(ctx, vm, {
      ...rt,
      boot: { kind: "restore", ram: { path: template.ram, share: false } },
    });
    await restoreFromTemplate({ lab, vm, template, qmp: f.qmp, qga: f.qga });
  };
  // Every launch settles before a failure is reported, so a rollback never races a QEMU being started.
  const launches = await Promise.allSettled(
    todo.map(async (p) => {
      const vm = p.vm;
      const f = vmFiles(ctx.stateDir, vm.name);
      if (p.mode === "resume") {
        await resume(f.qmp);
        progress(`VM ${vm.name}: resumed`);
        return;
      }
      if (p.mode === "restart") {
        progress(`VM ${vm.name}: restarting (its tap was made anew)`);
        await stopVm(ctx, vm);
      }
      const t0 = Date.now();
      let reason = p.cold;
      if (reason === null) {
        try {
          await instant(vm);
        } catch (e) {
          reason = `the template did not work: ${(e as Error).message.split("\n")[0]}`;
          progress(`VM ${vm.name}: ${reason}; booting it cold`);
          await stopVm(ctx, vm);
        }
      }
      if (reason !== null) {
        await cold(vm);
        progress(`VM ${vm.name}: started (cold boot)`);
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
      }
      const record: BootRecord = {
        mode: reason === null ? "template" : "cold",
        reason,
        ms: Date.now() - t0,
      };
      writeFileAtomic(f.boot, `${JSON.stringify(record)}\n`);
      progress(
        `VM ${vm.name}: ready (${record.mode === "template" ? "from a template" : "cold boot"}, ${record.ms} ms)`,
      );
    }),
  );
  const failed = launches.find((l): l is PromiseRejectedResult => l.status === "rejected");
  if (failed) throw failed.reason;
}
