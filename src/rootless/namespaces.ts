// A rootless lab's namespaces: the holder process that keeps them (PID 1 of a new PID namespace, so
// everything inside ends with it), set up once, and entered with nsenter to run qnet itself inside.
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT, UserError } from "../errors.js";
import { writeFileAtomic } from "../host/files.js";
import type { Journal } from "../host/journal.js";
import { holderProcess } from "./record.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The holder's program (compiled beside this file). */
export const HOLDER_SCRIPT = fileURLToPath(new URL("./holder-main.js", import.meta.url));
/** qnet's own command line (what runs inside). */
export const CLI_SCRIPT = fileURLToPath(new URL("../cli/main.js", import.meta.url));

/**
 * The argv prefix that runs a command inside the holder's namespaces: its user namespace (the user's
 * own credentials, which are root there), network, mount (its /proc and /sys) and PID namespaces.
 */
export function enterArgv(holderPid: number, cwd = process.cwd()): string[] {
  return [
    "nsenter",
    `--target=${holderPid}`,
    "--user",
    "--net",
    "--mount",
    "--pid",
    "--preserve-credentials",
    `--wd=${cwd}`,
    "--",
  ];
}

/** The `unshare` argv that starts a holder (the namespaces a rootless lab lives in). */
export function holderArgv(match: string): string[] {
  return [
    "unshare",
    "--user",
    "--map-root-user",
    "--net",
    "--pid",
    "--mount",
    "--fork",
    "--mount-proc",
    // Killing unshare (the holder's parent) ends the holder, and with it the lab.
    "--kill-child",
    "--",
    process.execPath,
    HOLDER_SCRIPT,
    match,
  ];
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

/** The child of `parent` that runs the holder script with `match` (unshare forks it), or null. */
function holderChild(parent: number, match: string): number | null {
  const kids = readOr(`/proc/${parent}/task/${parent}/children`, "").trim().split(/\s+/);
  for (const k of kids) {
    if (!/^\d+$/.test(k)) continue;
    const argv = readOr(`/proc/${k}/cmdline`, "").split("\0");
    if (argv[1] === HOLDER_SCRIPT && argv.includes(match)) return Number(k);
  }
  return null;
}

/**
 * Start the holder of a lab's namespaces (its undo journaled first) and return its PID on the host.
 * Unprivileged user namespaces must be allowed; when they are not, the error says where to look.
 */
export async function startHolder(stateDir: string, journal: Journal): Promise<number> {
  const h = holderProcess(stateDir);
  journal.record({
    what: "start the lab's namespace holder (its own user, network, mount and PID namespaces)",
    undo: { kind: "rootless-process", ...h },
  });
  rmSync(h.pidfile, { force: true });
  const logPath = join(stateDir, "holder.log");
  const log = openSync(logPath, "w", 0o600);
  const argv = holderArgv(h.match);
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ["ignore", log, log] });
  closeSync(log);
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  child.once("error", () => {
    exited = true;
  });
  child.unref();
  const deadline = Date.now() + 15_000;
  for (let pause = 2; ; pause = Math.min(pause * 2, 25)) {
    const pid = child.pid !== undefined ? holderChild(child.pid, h.match) : null;
    if (pid !== null) {
      writeFileAtomic(h.pidfile, `${pid}\n`);
      return pid;
    }
    if (exited || Date.now() > deadline) {
      const why = readOr(logPath, "").trim().split("\n").slice(-3).join("; ");
      throw new UserError(
        `could not create the lab's user and network namespaces${why ? `: ${why}` : ""}`,
        "unprivileged user namespaces may be off on this host: `qnet doctor` (rootless section) says why and how to allow them",
        EXIT.environment,
      );
    }
    await sleep(pause);
  }
}

/**
 * Run one command inside the holder's namespaces, through qnet's runner (its PATH, a missing program named
 * with its package); throws with its stderr when it fails.
 */
export async function runInside(
  holderPid: number,
  argv: string[],
  opts: { allowFail?: boolean } = {},
) {
  // Loaded here: the runner brings execa, which the commands that only enter the lab never need.
  const { ProcessRunner } = await import("../host/runner.js");
  const r = await new ProcessRunner(null).run([...enterArgv(holderPid, "/"), ...argv], {
    allowFail: true,
    timeoutMs: 20_000,
  });
  if (r.exitCode !== 0 && !opts.allowFail)
    throw new UserError(
      `inside the lab's namespaces, \`${argv.join(" ")}\` failed: ${String(r.stderr).trim()}`,
    );
  return r;
}

/**
 * Set up a new holder's namespaces: loopback up; /sys mounted for its network namespace (so what reads
 * /sys/class/net sees the lab's links); /etc/resolv.conf bound to the lab's own (DNS through the helper).
 */
export async function setUpInside(holderPid: number, stateDir: string): Promise<string[]> {
  const notes: string[] = [];
  const resolv = resolvConfPath(stateDir);
  writeFileSync(resolv, "", { mode: 0o644 });
  const [lo, sys, dns] = await Promise.all([
    runInside(holderPid, ["ip", "link", "set", "dev", "lo", "up"], { allowFail: true }),
    runInside(holderPid, ["mount", "-t", "sysfs", "-o", "nosuid,nodev,noexec", "sysfs", "/sys"], {
      allowFail: true,
    }),
    runInside(holderPid, ["mount", "--bind", resolv, "/etc/resolv.conf"], { allowFail: true }),
  ]);
  if (lo.exitCode !== 0)
    throw new UserError(
      `the lab's namespaces refuse network changes (\`ip link set lo up\`: ${String(lo.stderr).trim()})`,
      "`qnet doctor` (rootless section) says why (an AppArmor or seccomp policy on user namespaces?)",
      EXIT.environment,
    );
  if (sys.exitCode !== 0)
    notes.push(`rootless: /sys stays the host's inside the lab (${String(sys.stderr).trim()})`);
  if (dns.exitCode !== 0)
    notes.push(
      `rootless: the lab keeps the host's /etc/resolv.conf (${String(dns.stderr).trim()})`,
    );
  return notes;
}

/** The lab's own resolv.conf in its state directory (bound over /etc/resolv.conf inside). */
export function resolvConfPath(stateDir: string): string {
  return join(stateDir, "resolv.conf");
}

/** Rewrite the lab's resolv.conf in place (a bind mount follows the inode, not the name). */
export function writeResolvConf(stateDir: string, text: string): void {
  writeFileSync(resolvConfPath(stateDir), text, { mode: 0o644 });
}
