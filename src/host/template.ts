// Instant start on the host: build a VM template once (boot the built-in guest with its RAM in a file,
// save the device state), then restore VMs from it (copy-on-write RAM, `-incoming defer`, QMP, the agent).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { shellQuote, UserError } from "../errors.js";
import type { BuiltGuest } from "../guest/build.js";
import { GUEST_CONFIGURE_SCRIPT, restoreParams } from "../guest/init-script.js";
import type { HostFacts, Lab, Vm } from "../model/lab.js";
import { builtinParams } from "../render/guest-boot.js";
import { qemuNameArg } from "../render/qemu-args.js";
import { templateArgv, templateFiles, templateKey, templateMac } from "../render/template.js";
import { GuestAgent, waitForAgent } from "./guest-agent.js";
import type { Journal } from "./journal.js";
import { livePid } from "./pidfile.js";
import { stopPid, waitGone } from "./process.js";
import { QmpClient } from "./qmp.js";
import { inNetns, type Runner } from "./runner.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `${XDG_CACHE_HOME:-$HOME/.cache}/qnet/templates`. */
export function templateCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg?.startsWith("/") ? xdg : join(homedir(), ".cache"), "qnet", "templates");
}

const versions = new Map<string, Promise<string>>();

/** The first line of `qemu --version` (part of the key: another QEMU restores nothing). */
function qemuVersion(binary: string): Promise<string> {
  let v = versions.get(binary);
  if (!v) {
    v = execa(binary, ["--version"]).then((r) => String(r.stdout).split("\n")[0] ?? "");
    versions.set(binary, v);
  }
  return v;
}

export interface Template {
  key: string;
  dir: string;
  ram: string;
  state: string;
}

async function qmpWait(q: QmpClient, done: (s: string) => boolean, what: string, ms: number) {
  const deadline = Date.now() + ms;
  let pause = 2;
  for (;;) {
    const m = await q.execute<{ status?: string; "error-desc"?: string }>("query-migrate");
    if (m.status === "failed")
      throw new Error(`${what} failed: ${m["error-desc"] ?? "no reason given"}`);
    if (done(m.status ?? "")) return;
    if (Date.now() > deadline) throw new Error(`${what} did not finish within ${ms} ms`);
    await sleep(pause);
    pause = Math.min(pause * 2, 50);
  }
}

const ignoreShared = { capabilities: [{ capability: "x-ignore-shared", state: true }] };

/**
 * The template of `vm`, built now if the cache has none: the template QEMU (journaled like any process
 * qnet starts, with its half-made directory) boots, its agent answers, its devices are saved; then the
 * directory is published by one rename, so a half-made template is never used.
 */
export async function ensureTemplate(opts: {
  vm: Vm;
  facts: HostFacts;
  guest: BuiltGuest;
  runner: Runner;
  journal: Journal;
  progress: (msg: string) => void;
  /** Templates asked for in this run, by key: VMs of one layout share one build. */
  memo: Map<string, Promise<Template>>;
}): Promise<Template> {
  const key = templateKey(opts.vm, opts.facts, opts.guest, await qemuVersion(opts.vm.qemu.binary));
  let t = opts.memo.get(key);
  if (!t) {
    t = makeTemplate(key, opts);
    opts.memo.set(key, t);
  }
  return t;
}

async function makeTemplate(
  key: string,
  opts: Parameters<typeof ensureTemplate>[0],
): Promise<Template> {
  const { vm, facts, guest, runner } = opts;
  const root = templateCacheDir();
  const dir = join(root, key);
  const files = templateFiles(dir);
  if (existsSync(files.state) && existsSync(files.ram)) return { key, dir, ...files };
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(3).toString("hex")}`;
  const tf = templateFiles(tmp);
  const tag = `tpl-${randomBytes(4).toString("hex")}`;
  opts.journal.record(
    { what: `make VM template ${key.slice(0, 12)}`, undo: { kind: "path", path: tmp } },
    {
      what: `boot VM template ${key.slice(0, 12)}`,
      undo: {
        kind: "process",
        pidfile: tf.pidfile,
        match: qemuNameArg(tag, "template"),
        qmp: tf.qmp,
      },
    },
  );
  mkdirSync(tmp, { mode: 0o700 });
  for (const f of [tf.sshHostKey, tf.sshAuthorizedKeys]) writeFileSync(f, "", { mode: 0o600 });
  const t0 = Date.now();
  opts.progress(
    `VM template ${key.slice(0, 12)}: booting the built-in guest once (cached afterwards)`,
  );
  try {
    const argv = inNetns(runner.netns, templateArgv(vm, facts, guest, tmp, tag));
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: "ignore" });
      child.on("error", () => resolve(null));
      child.on("exit", resolve);
    });
    if (code !== 0) throw new Error(`the template's QEMU exited with ${code ?? "an error"}`);
    await waitForAgent(tf.qga, { timeoutMs: 120_000, intervalMs: 100 });
    const q = await QmpClient.connect(tf.qmp, { timeoutMs: 5_000 });
    try {
      await q.execute("migrate-set-capabilities", ignoreShared);
      await q.execute("stop");
      await q.execute("migrate", { uri: `exec:cat > ${shellQuote(tf.state)}` });
      await qmpWait(q, (s) => s === "completed", "saving the template", 60_000);
      await q.execute("quit").catch(() => {});
    } finally {
      q.close();
    }
    const pid = livePid(tf.pidfile, qemuNameArg(tag, "template"));
    if (pid !== null && !(await waitGone(pid, 5_000))) await stopPid(pid);
    writeFileSync(
      join(tmp, "manifest.json"),
      `${JSON.stringify({ key, vm: { memory: vm.memory, cpus: vm.cpus, nics: vm.nics.map((n) => n.model) }, guest: guest.key, made: new Date().toISOString() }, null, 2)}\n`,
    );
    for (const f of [tf.qmp, tf.qga, tf.serial, tf.pidfile]) rmSync(f, { force: true });
    try {
      renameSync(tmp, dir);
    } catch {
      // Another qnet published the same template meanwhile: use that one.
      rmSync(tmp, { recursive: true, force: true });
    }
    opts.progress(`VM template ${key.slice(0, 12)}: ready after ${Date.now() - t0} ms`);
    return { key, dir, ...files };
  } catch (e) {
    const pid = livePid(tf.pidfile, qemuNameArg(tag, "template"));
    if (pid !== null) await stopPid(pid, 1_000);
    rmSync(tmp, { recursive: true, force: true });
    throw new UserError(
      `could not make the VM template: ${(e as Error).message}`,
      undefined,
      undefined,
      {
        cause: e,
      },
    );
  }
}

/**
 * Bring a VM launched with `-incoming defer` to life from its template: load the saved devices (RAM is
 * the template's file, copy-on-write), resume, then give the guest this VM's identity through the agent
 * and check it sees exactly this VM's NICs. Throws on any failure (the caller boots the VM cold).
 */
export async function restoreFromTemplate(opts: {
  lab: Lab;
  vm: Vm;
  template: Template;
  qmp: string;
  qga: string;
}): Promise<void> {
  const { lab, vm, template } = opts;
  const q = await QmpClient.connect(opts.qmp, { timeoutMs: 10_000 });
  try {
    await q.execute("migrate-set-capabilities", ignoreShared);
    await q.execute("migrate-incoming", { uri: `exec:cat ${shellQuote(template.state)}` });
    await qmpWait(q, (s) => s === "completed", "restoring from the template", 30_000);
    await q.execute("cont");
  } catch (e) {
    // QEMU could not load the template: it is unusable (made by another QEMU, damaged). Drop it, so the
    // next up makes it anew instead of failing again.
    rmSync(template.dir, { recursive: true, force: true });
    throw e;
  } finally {
    q.close();
  }
  const agent = await GuestAgent.connect(opts.qga, { timeoutMs: 15_000 });
  try {
    const args = [
      ...builtinParams(lab, vm),
      ...restoreParams(
        vm.nics.map((_, i) => templateMac(i)),
        new Date(),
      ),
    ];
    const r = await agent.exec([GUEST_CONFIGURE_SCRIPT, ...args], { timeoutMs: 30_000 });
    if (r.exitCode !== 0)
      throw new Error(
        `configuring the guest failed (exit ${r.exitCode}): ${r.stderr.toString().trim()}`,
      );
    // The guest must see exactly this VM's NICs, with its MACs (a layout mismatch can pass silently).
    const seen = await agent.networkInterfaces();
    const macs = seen
      .filter((i) => i.name !== "lo")
      .map((i) => i.mac)
      .sort();
    const want = vm.nics.map((n) => n.mac.toLowerCase()).sort();
    if (JSON.stringify(macs) !== JSON.stringify(want))
      throw new Error(`the guest sees NICs ${macs.join(" ") || "none"}, not ${want.join(" ")}`);
  } finally {
    agent.close();
  }
}
