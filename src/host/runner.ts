// Runs external commands (argv arrays, never a shell), inside the lab's network namespace when it has one.
import { execa } from "execa";
import { CommandError } from "../errors.js";
import { missingProgramsError, programPath } from "./programs.js";

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Return a failed result instead of throwing a CommandError. */
  allowFail?: boolean;
  /** Run in the host's namespace even when the runner has one. */
  hostNamespace?: boolean;
  timeoutMs?: number;
}

export interface Runner {
  /** The network namespace commands run in, or null for the current one. */
  readonly netns: string | null;
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

/** The argv that runs `argv` inside `netns` (unchanged when netns is null). */
export function inNetns(netns: string | null, argv: readonly string[]): string[] {
  if (!netns) return [...argv];
  // `ip` itself takes the namespace as an option: no extra process, no remount of /sys.
  if (argv[0] === "ip") return ["ip", "-n", netns, ...argv.slice(1)];
  return ["ip", "netns", "exec", netns, ...argv];
}

/** The real runner: spawns processes with execa. */
export class ProcessRunner implements Runner {
  constructor(readonly netns: string | null = null) {}

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const full = opts.hostNamespace ? [...argv] : inNetns(this.netns, argv);
    const [file, ...args] = full;
    const r = await execa(file!, args, {
      input: opts.input,
      reject: false,
      stripFinalNewline: false,
      timeout: opts.timeoutMs,
      env: { LC_ALL: "C", PATH: programPath() },
    });
    const result = {
      stdout: String(r.stdout ?? ""),
      stderr: String(r.stderr ?? ""),
      exitCode: r.exitCode ?? -1,
    };
    if (r.failed && !opts.allowFail) {
      const missing = missingProgram(full, r.code, result.stderr);
      if (missing) throw missingProgramsError([missing]);
      throw new CommandError(
        full,
        r.exitCode ?? null,
        result.stderr || (r.cause as Error | undefined)?.message || "",
        {
          cause: r.cause,
        },
      );
    }
    return result;
  }
}

/**
 * The program that could not be run at all: not found by spawn (ENOENT), or by `ip netns exec`, which says
 * `exec of "X" failed: No such file or directory`.
 */
export function missingProgram(
  argv: readonly string[],
  code: string | undefined,
  stderr: string,
): string | null {
  if (code === "ENOENT") return argv[0] ?? null;
  const m = /^exec of "([^"]+)" failed: No such file or directory$/m.exec(stderr);
  return m ? m[1]! : null;
}

/** A runner for unit tests: records every call and answers from a table of canned results. */
export class RecordingRunner implements Runner {
  readonly calls: { argv: string[]; input?: string }[] = [];
  constructor(
    readonly netns: string | null = null,
    private readonly answer: (argv: string[]) => Partial<RunResult> = () => ({}),
  ) {}

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const full = opts.hostNamespace ? [...argv] : inNetns(this.netns, argv);
    this.calls.push(opts.input === undefined ? { argv: full } : { argv: full, input: opts.input });
    const a = this.answer(full);
    const result = { stdout: a.stdout ?? "", stderr: a.stderr ?? "", exitCode: a.exitCode ?? 0 };
    if (result.exitCode !== 0 && !opts.allowFail) {
      throw new CommandError(full, result.exitCode, result.stderr);
    }
    return result;
  }
}
