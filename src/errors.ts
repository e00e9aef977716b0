// The three kinds of error qnet raises; the CLI's one handler prints them and picks the exit code.

/** Exit codes, documented in the README. */
export const EXIT = {
  ok: 0,
  /** A command failed (host change, VM start, check failure). */
  failure: 1,
  /** Wrong command-line usage. */
  usage: 2,
  /** The topology file is invalid. */
  invalid: 3,
  /** The environment is missing something (binary, permission, lock held). */
  environment: 4,
  /** A bug in qnet. */
  internal: 70,
} as const;

/** A problem the user can fix: bad input, a missing tool, a name taken. Carries a hint. */
export class UserError extends Error {
  override name = "UserError";
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode: number = EXIT.failure,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An external command that failed: its argv, exit code and stderr are kept for the report. */
export class CommandError extends Error {
  override name = "CommandError";
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    options?: { cause?: unknown; message?: string },
  ) {
    super(
      options?.message ??
        `command failed (exit ${exitCode ?? "signal"}): ${formatArgv(argv)}${stderr.trim() ? `\n${stderr.trim()}` : ""}`,
      options,
    );
  }
}

/** One located finding of the validator. */
export interface Diagnostic {
  severity: "error" | "warning";
  file: string;
  line: number;
  column: number;
  /** Dot path of the field, e.g. `vms.vm0.nics[0].ip`; empty for the whole file. */
  path: string;
  message: string;
}

/** The topology file is invalid: every error found, located. */
export class ValidationError extends Error {
  override name = "ValidationError";
  constructor(readonly diagnostics: Diagnostic[]) {
    super(
      diagnostics
        .filter((d) => d.severity === "error")
        .map(formatDiagnostic)
        .join("\n"),
    );
  }
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = `${d.file}:${d.line}:${d.column}`;
  return `${where}: ${d.severity}: ${d.path ? `${d.path}: ` : ""}${d.message}`;
}

/** Quote an argv for display (copy-pasteable into a POSIX shell). Display only: never executed. */
export function formatArgv(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

export function shellQuote(s: string): string {
  if (s !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
