// Image VMs for end-to-end tests: the shared Debian image, and QEMU launched by hand inside a test namespace.
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GuestAgent, waitForAgent } from "../../../src/host/guest-agent.js";
import { type ResolvedImage, resolveImage } from "../../../src/image/resolve.js";
import type { HostFacts, Lab, Vm } from "../../../src/model/lab.js";
import { imageBootArgs } from "../../../src/render/image-args.js";
import { type VmRuntime, vmArgv } from "../../../src/render/qemu-args.js";

/** The image the boot tests run: debian-12, or QNET_TEST_IMAGE (debian-13 runs the same tests). */
export const IMAGE = process.env.QNET_TEST_IMAGE ?? "debian-12";

/**
 * The image every image test shares: built once per machine (and so once per CI run) in the normal
 * cache, keyed by its inputs; QNET_TEST_IMAGE_CACHE points the tests at another cache.
 */
let shared: Promise<ResolvedImage> | undefined;
export function testImage(onProgress?: (msg: string) => void): Promise<ResolvedImage> {
  shared ??= resolveImage(IMAGE, {
    ...(process.env.QNET_TEST_IMAGE_CACHE ? { cacheDir: process.env.QNET_TEST_IMAGE_CACHE } : {}),
    onProgress: onProgress ?? ((m) => process.stderr.write(`# ${m}\n`)),
  });
  return shared;
}

/** TCG, as qnet uses it on this machine type (see guest-boot.test.ts for why /dev/kvm is not used). */
export const TCG: HostFacts = { kvm: false, vhost: false };

export interface LaunchedVm {
  name: string;
  pid: number;
  qga: string;
  serialLog: string;
  startedAt: number;
}

/** Runtime files of a VM in `dir` (a private test directory). */
export function runtimeFiles(dir: string, vm: string) {
  const base = join(dir, vm);
  return {
    qmp: `${base}.qmp`,
    qga: `${base}.qga`,
    serial: `${base}.serial`,
    serialLog: `${base}.console.log`,
    pidfile: `${base}.pid`,
    overlay: `${base}.overlay.qcow2`,
    seed: `${base}.seed.img`,
  };
}

/**
 * Start an image VM's QEMU (daemonized, as qnet runs it) inside namespace `ns`, from the lab's argv:
 * the image's kernel boots directly, the overlay and the seed are the two virtio drives.
 */
export function launchImageVm(
  ns: string,
  lab: Lab,
  vm: Vm,
  image: ResolvedImage,
  dir: string,
): LaunchedVm {
  const f = runtimeFiles(dir, vm.name);
  const rt: VmRuntime = {
    qmp: f.qmp,
    qga: f.qga,
    serial: f.serial,
    serialLog: f.serialLog,
    pidfile: f.pidfile,
    boot: { kind: "kernel", ...image.boot! },
  };
  const withDrives: Vm = {
    ...vm,
    qemu: {
      ...vm.qemu,
      args: [...imageBootArgs({ boot: null, overlay: f.overlay, seed: f.seed }), ...vm.qemu.args],
    },
  };
  const argv = vmArgv(lab, withDrives, TCG, rt);
  const startedAt = Date.now();
  const err = openSync(`${join(dir, vm.name)}.qemu.log`, "w", 0o600);
  try {
    execFileSync("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "ignore", err] });
  } catch (e) {
    throw new Error(
      `${vm.name}: QEMU did not start: ${readFileSync(`${join(dir, vm.name)}.qemu.log`, "utf8")}`,
      { cause: e },
    );
  } finally {
    closeSync(err);
  }
  const pid = Number(readFileSync(f.pidfile, "utf8").trim());
  return { name: vm.name, pid, qga: f.qga, serialLog: f.serialLog, startedAt };
}

/** Wait for the guest agent; returns ms from launch. The serial log's tail is in the error. */
export async function waitAgent(v: LaunchedVm, timeoutMs = 300_000): Promise<number> {
  try {
    await waitForAgent(v.qga, { timeoutMs, intervalMs: 500 });
  } catch (e) {
    const log = existsSync(v.serialLog) ? readFileSync(v.serialLog, "utf8").slice(-3000) : "";
    throw new Error(`${v.name}: ${(e as Error).message}\nserial log:\n${log}`);
  }
  return Date.now() - v.startedAt;
}

/** Run a program in the guest through its agent. */
export async function guestRun(
  v: LaunchedVm,
  argv: string[],
  timeoutMs = 60_000,
): Promise<{ code: number; out: string; err: string }> {
  const agent = await GuestAgent.connect(v.qga, { timeoutMs: 30_000 });
  try {
    const r = await agent.exec(argv, { timeoutMs });
    return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
  } finally {
    agent.close();
  }
}

/** SIGKILL a QEMU we started (by its PID) and wait for it to go. */
export function killVm(v: LaunchedVm | undefined): void {
  if (!v) return;
  try {
    process.kill(v.pid, "SIGKILL");
  } catch {
    return;
  }
  for (let i = 0; i < 100 && existsSync(`/proc/${v.pid}`); i++) {
    spawnSync("sleep", ["0.05"]);
  }
}

/** The OpenSSH client, run inside namespace `ns`, with argv (no shell anywhere). */
export function sshIn(
  ns: string,
  args: string[],
  timeoutMs = 30_000,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("ip", ["netns", "exec", ns, "ssh", ...args], {
    encoding: "utf8",
    timeout: timeoutMs,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Retry `ssh` until it succeeds (sshd starts after the agent); returns the successful run. */
export async function sshUntil(
  ns: string,
  args: string[],
  timeoutMs = 180_000,
): Promise<{ stdout: string; ms: number }> {
  const t0 = Date.now();
  let last = "";
  while (Date.now() - t0 < timeoutMs) {
    const r = sshIn(ns, ["-o", "ConnectTimeout=5", ...args], 20_000);
    if (r.status === 0) return { stdout: r.stdout, ms: Date.now() - t0 };
    last = r.stderr;
    await new Promise((res) => setTimeout(res, 1000));
  }
  throw new Error(`ssh ${args.join(" ")} did not succeed in ${timeoutMs} ms: ${last}`);
}

export function writeText(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
}
