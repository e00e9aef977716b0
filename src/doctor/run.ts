// Running probe commands for doctor: a missing tool or a failing command is a finding, never a throw.
import type { Runner, RunOptions } from "../host/runner.js";

export interface Probe {
  ok: boolean;
  /** The binary could not be started (not installed). */
  missing: boolean;
  stdout: string;
  stderr: string;
  exitCode: number;
}

export async function probe(
  runner: Runner,
  argv: readonly string[],
  opts: RunOptions = {},
): Promise<Probe> {
  try {
    const r = await runner.run(argv, { timeoutMs: 10_000, ...opts, allowFail: true });
    const missing =
      r.exitCode === -1 ||
      r.exitCode === 127 ||
      /ENOENT|exec of .* failed: No such file/.test(r.stderr);
    return { ok: r.exitCode === 0, missing, ...r };
  } catch (e) {
    return { ok: false, missing: true, stdout: "", stderr: String(e), exitCode: -1 };
  }
}
