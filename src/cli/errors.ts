// The CLI's one error handler: prints each kind of error for people and returns the exit code.
import {
  CommandError,
  EXIT,
  formatArgv,
  formatDiagnostic,
  UserError,
  ValidationError,
} from "../errors.js";

export function reportError(
  e: unknown,
  write: (s: string) => void = (s) => process.stderr.write(s),
): number {
  if (e instanceof ValidationError) {
    // Invalid input: the located diagnostics and nothing else.
    write(`${e.diagnostics.map(formatDiagnostic).join("\n")}\n`);
    return EXIT.invalid;
  }
  if (e instanceof UserError) {
    write(`qnet: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
    return e.exitCode;
  }
  if (e instanceof CommandError) {
    write(
      `qnet: ${e.message.split("\n")[0]}\n  command: ${formatArgv(e.argv)}\n  exit code: ${e.exitCode ?? "killed by a signal"}\n${e.stderr.trim() ? `  stderr: ${e.stderr.trim().split("\n").join("\n          ")}\n` : ""}`,
    );
    // No exit code: the command could not run at all (not installed): the environment.
    return e.exitCode === null && /ENOENT|not found/i.test(e.stderr)
      ? EXIT.environment
      : EXIT.failure;
  }
  const name = (e as Error | null)?.name;
  if (name === "ProtocolError" || name === "QmpError" || name === "GuestAgentError") {
    // QEMU or its guest agent said something unexpected: the VM's state, not a bug in qnet.
    write(
      `qnet: ${(e as Error).message}\nhint: \`qnet status LAB\` shows the VM's state; \`qnet up\` restarts a VM that is gone\n`,
    );
    return EXIT.failure;
  }
  const sys = e as NodeJS.ErrnoException;
  if (sys && typeof sys.code === "string" && typeof sys.syscall === "string") {
    // The system refused (permissions, a missing directory): the environment, not a bug in qnet.
    const hint =
      (sys.code === "EACCES" || sys.code === "EPERM") && process.getuid?.() !== 0
        ? "qnet changes the host's network: run it as root (sudo)"
        : undefined;
    write(
      `qnet: ${sys.syscall}${sys.path ? ` ${sys.path}` : ""}: ${sys.code}\n${hint ? `hint: ${hint}\n` : ""}`,
    );
    return EXIT.environment;
  }
  const err = e as Error;
  write(`qnet: internal error: ${err?.stack ?? String(e)}\nPlease report this as a bug.\n`);
  return EXIT.internal;
}
