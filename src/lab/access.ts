// Guest access for a running lab: run a command through the guest agent, attach to the serial console.
import { connect } from "node:net";
import { EXIT, UserError } from "../errors.js";
import { type ExecResult, GuestAgent } from "../host/guest-agent.js";
import type { Lab } from "../model/lab.js";
import { vmFiles } from "./paths.js";

function requireVm(lab: Lab, name: string): void {
  if (!lab.vms.some((v) => v.name === name)) {
    throw new UserError(
      `lab ${lab.name} has no VM named "${name}"`,
      `VMs: ${lab.vms.map((v) => v.name).join(", ") || "none"}`,
      EXIT.usage,
    );
  }
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
  const agent = await GuestAgent.connect(vmFiles(stateDir, vm).qga, { timeoutMs: 10_000 });
  try {
    // guest-exec wants a path; a shell resolves a bare command name on PATH without any word splitting.
    const full = argv[0]!.startsWith("/") ? argv : ["/bin/sh", "-c", 'exec "$@"', "sh", ...argv];
    return await agent.exec(full, {
      timeoutMs: opts.timeoutMs ?? 120_000,
      ...(opts.input ? { input: opts.input } : {}),
    });
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
