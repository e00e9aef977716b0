// A rootless lab's way out: start pasta (preferred) or slirp4netns on the user's host, attached to the
// lab's namespace holder, with its published ports; journaled before it starts, stopped by pidfile.
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { execa } from "execa";
import { EXIT, UserError } from "../errors.js";
import { writeFileAtomic } from "../host/files.js";
import type { Journal } from "../host/journal.js";
import { findProgram, programPath } from "../host/programs.js";
import {
  type HelperPlan,
  type HelperTool,
  pastaArgv,
  slirpArgv,
  slirpForwardRequests,
} from "../render/rootless-helper.js";
import { rootlessPid, undoRootlessProcess } from "./processes.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a program is installed (on the PATH, or in the sbin directories qnet also searches). */
export function onPath(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return findProgram(name, programPath(env.PATH ?? "")) !== null;
}

/** The helper to use: QNET_ROOTLESS_HELPER if set, else pasta when installed, else slirp4netns. */
export function chooseHelper(env: NodeJS.ProcessEnv = process.env): HelperTool {
  const forced = env.QNET_ROOTLESS_HELPER;
  if (forced === "pasta" || forced === "slirp4netns") {
    if (onPath(forced, env)) return forced;
    throw new UserError(
      `QNET_ROOTLESS_HELPER=${forced}, but ${forced} is not installed`,
      `install ${forced === "pasta" ? "passt" : "slirp4netns"}`,
      EXIT.environment,
    );
  }
  if (forced)
    throw new UserError(
      `QNET_ROOTLESS_HELPER=${forced} is not a helper qnet knows`,
      "use pasta or slirp4netns",
      EXIT.usage,
    );
  if (onPath("pasta", env)) return "pasta";
  if (onPath("slirp4netns", env)) return "slirp4netns";
  throw new UserError(
    "a rootless lab with NAT, forwards or user networking needs pasta or slirp4netns, and neither is installed",
    "install passt (it has pasta: `apt-get install passt`), or slirp4netns",
    EXIT.environment,
  );
}

/** The running helper's PID, or null. */
export function helperPid(plan: HelperPlan): number | null {
  return rootlessPid(plan);
}

/** Stop a helper (idempotent). */
export function stopHelper(plan: HelperPlan): Promise<void> {
  return undoRootlessProcess({
    kind: "rootless-process",
    role: plan.role,
    pidfile: plan.pidfile,
    match: plan.match,
  });
}

function tail(path: string): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-8).join("\n");
  } catch {
    return "";
  }
}

/** Start the helper for the holder's namespaces (its undo journaled first); resolves once it carries. */
export async function startHelper(
  plan: HelperPlan,
  holderPid: number,
  journal: Journal,
): Promise<number> {
  journal.record({
    what: `start ${plan.tool} for the lab's NAT and published ports`,
    undo: { kind: "rootless-process", role: plan.role, pidfile: plan.pidfile, match: plan.match },
  });
  rmSync(plan.pidfile, { force: true });
  const pid =
    plan.tool === "pasta" ? await startPasta(plan, holderPid) : await startSlirp(plan, holderPid);
  return pid;
}

async function startPasta(plan: HelperPlan, holderPid: number): Promise<number> {
  const argv = pastaArgv(plan, holderPid, { asRoot: process.getuid?.() === 0 });
  // pasta configures the namespace side, writes its pidfile, then leaves a daemon behind.
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: 20_000 });
  const pid = rootlessPid(plan);
  if (r.exitCode !== 0 || pid === null) {
    throw new UserError(
      `pasta did not start (exit ${r.exitCode ?? "none"}): ${(String(r.stderr).trim() || tail(plan.log)).split("\n").slice(-4).join("; ")}`,
      `its log is ${plan.log}`,
      EXIT.environment,
    );
  }
  return pid;
}

async function startSlirp(plan: HelperPlan, holderPid: number): Promise<number> {
  const argv = slirpArgv(plan, holderPid);
  rmSync(plan.apiSocket!, { force: true });
  const log = openSync(plan.log, "w", 0o600);
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true,
    stdio: ["ignore", log, log, "pipe"],
  });
  closeSync(log);
  const ready = await new Promise<boolean>((resolve) => {
    const fd3 = child.stdio[3] as NodeJS.ReadableStream | null;
    const timer = setTimeout(() => resolve(false), 20_000);
    fd3?.once("data", () => {
      clearTimeout(timer);
      resolve(true);
    });
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(false);
    });
    child.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  (child.stdio[3] as { destroy?: () => void } | null)?.destroy?.();
  child.unref();
  if (!ready || child.pid === undefined) {
    throw new UserError(
      `slirp4netns did not start: ${tail(plan.log) || "no output"}`,
      `its log is ${plan.log}`,
      EXIT.environment,
    );
  }
  writeFileAtomic(plan.pidfile, `${child.pid}\n`);
  for (const req of slirpForwardRequests(plan)) await slirpApi(plan.apiSocket!, req);
  return child.pid;
}

/** One request to slirp4netns's API socket; throws when it answers with an error. */
async function slirpApi(socket: string, req: object): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        const s = connect(socket);
        let data = "";
        s.on("connect", () => s.end(JSON.stringify(req)));
        s.on("data", (d) => {
          data += d;
        });
        s.on("end", () => resolve(data));
        s.on("error", reject);
      });
      const parsed = JSON.parse(answer) as { error?: { desc?: string } };
      if (parsed.error)
        throw new UserError(
          `slirp4netns refused ${JSON.stringify(req)}: ${parsed.error.desc ?? "no reason given"}`,
          "another process may hold the port on your host",
          EXIT.environment,
        );
      return;
    } catch (e) {
      if (e instanceof UserError || i >= 50) throw e;
      await sleep(20);
    }
  }
}
