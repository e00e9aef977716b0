// Guest access for a running lab: run a command through the guest agent, attach to the serial console.
import { connect } from "node:net";
import { EXIT, UserError } from "../errors.js";
import { type ExecResult, GuestAgent, GuestAgentError } from "../host/guest-agent.js";
import { livePid } from "../host/pidfile.js";
import { SocketTimeoutError } from "../host/unix-json.js";
import type { Lab } from "../model/lab.js";
import { vmFiles } from "../model/paths.js";
import { qemuNameArg } from "../render/qemu-args.js";

function requireVm(lab: Lab, name: string): void {
  if (!lab.vms.some((v) => v.name === name)) {
    throw new UserError(
      `lab ${lab.name} has no VM named "${name}"`,
      `VMs: ${lab.vms.map((v) => v.name).join(", ") || "none"}`,
      EXIT.usage,
    );
  }
}

/** The VM's QEMU must run: otherwise say so at once (no 10 s of connection retries). */
function requireRunning(stateDir: string, lab: Lab, vm: string): void {
  if (livePid(vmFiles(stateDir, vm).pidfile, qemuNameArg(lab.name, vm)) === null) {
    throw new UserError(
      `VM ${vm} of lab ${lab.name} is not running (no QEMU process)`,
      `\`qnet up <topology file>\` starts it again; \`qnet status ${lab.name}\` shows the lab`,
    );
  }
}

/** A failure of the guest agent's protocol, as a message that names the VM, its socket and what to do. */
export function agentFailure(lab: Lab, vm: string, socket: string, e: unknown): UserError {
  if (e instanceof UserError && !(e instanceof SocketTimeoutError)) return e;
  const why = (e as Error).message;
  return new UserError(
    `VM ${vm} of lab ${lab.name}: its guest agent (${socket}) failed: ${why}`,
    `is qemu-guest-agent running in the guest? \`qnet status ${lab.name}\` shows the VM; \`qnet console ${lab.name} ${vm}\` reaches it without the agent`,
    EXIT.failure,
    { cause: e },
  );
}

/**
 * The exit code and message of a program the agent could not start, as a shell reports them: 127 when
 * it does not exist, 126 when it cannot be executed. Null for any other agent error.
 */
export function spawnFailure(e: unknown, path: string): ExecResult | null {
  if (!(e instanceof GuestAgentError) || e.command !== "guest-exec") return null;
  const code = /No such file|not found/i.test(e.desc)
    ? 127
    : /Permission denied|Exec format error|not executable/i.test(e.desc)
      ? 126
      : null;
  if (code === null) return null;
  const reason = /\(([^()]+)\)\s*['"]?\s*$/.exec(e.desc)?.[1] ?? e.desc;
  return {
    exitCode: code,
    stdout: Buffer.alloc(0),
    stderr: Buffer.from(`${path}: ${reason}\n`),
  };
}

/** Run argv in the guest; the command is looked up on the guest's PATH through `/bin/sh -c 'exec "$@"'`. */
export async function execInVm(
  stateDir: string,
  lab: Lab,
  vm: string,
  argv: string[],
  opts: { timeoutMs?: number; input?: Buffer } = {},
): Promise<ExecResult> {
  requireVm(lab, vm);
  if (argv.length === 0)
    throw new UserError("nothing to run", "usage: qnet exec LAB VM -- COMMAND [ARGS...]");
  requireRunning(stateDir, lab, vm);
  const socket = vmFiles(stateDir, vm).qga;
  let agent: GuestAgent;
  try {
    agent = await GuestAgent.connect(socket, { timeoutMs: 10_000 });
  } catch (e) {
    throw agentFailure(lab, vm, socket, e);
  }
  try {
    // guest-exec wants a path; a shell resolves a bare command name on PATH without any word splitting.
    const full = argv[0]!.startsWith("/") ? argv : ["/bin/sh", "-c", 'exec "$@"', "sh", ...argv];
    return await agent.exec(full, {
      timeoutMs: opts.timeoutMs ?? 120_000,
      ...(opts.input ? { input: opts.input } : {}),
    });
  } catch (e) {
    const failed = spawnFailure(e, argv[0]!);
    if (failed) return failed;
    throw agentFailure(lab, vm, socket, e);
  } finally {
    agent.close();
  }
}

/**
 * Attach the terminal to a VM's serial console until the user types Ctrl-] (0x1d).
 * Resolves when detached or when QEMU closes the console.
 */
export async function attachConsole(stateDir: string, lab: Lab, vm: string): Promise<void> {
  requireVm(lab, vm);
  const path = vmFiles(stateDir, vm).serial;
  const sock = connect(path);
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", (e) =>
      reject(
        new UserError(
          `cannot open the console of ${vm} (${path}): ${e.message}`,
          "is the VM running? see `qnet status`",
        ),
      ),
    );
  });
  process.stderr.write(`connected to ${vm}'s console; press Ctrl-] to detach\n`);
  const stdin = process.stdin;
  const raw = stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  await new Promise<void>((resolve) => {
    const done = () => {
      if (raw) stdin.setRawMode(false);
      // Release stdin entirely, or a piped stdin keeps the process alive after detaching.
      stdin.destroy();
      stdin.off("data", onData);
      sock.destroy();
      resolve();
    };
    const onData = (buf: Buffer) => {
      const i = buf.indexOf(0x1d);
      if (i >= 0) {
        if (i > 0) sock.write(buf.subarray(0, i));
        done();
      } else sock.write(buf);
    };
    stdin.on("data", onData);
    stdin.once("end", done);
    sock.on("data", (d) => process.stdout.write(d));
    sock.once("close", done);
  });
}
