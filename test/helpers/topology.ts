// Test helpers for topology files: compile text, collect diagnostics, and run the real CLI.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import type { Diagnostic } from "../../src/errors.js";
import { ValidationError } from "../../src/errors.js";
import { type Compiled, compileTopology } from "../../src/load/compile.js";
import { parseTopologyText } from "../../src/load/parse.js";
import { validateTopology } from "../../src/load/validate.js";
import { REPO_ROOT } from "./golden.js";

export const FILE = "lab.yaml";

/** Every diagnostic (errors and warnings) the loader and validator report for `text`. */
export function diagnose(text: string, file = FILE): Diagnostic[] {
  return validateTopology(parseTopologyText(text, file)).diagnostics;
}

export const errorsOf = (text: string) => diagnose(text).filter((d) => d.severity === "error");
export const warningsOf = (text: string) => diagnose(text).filter((d) => d.severity === "warning");

/** Compile text that must be valid. */
export function compile(text: string, file = FILE): Compiled {
  return compileTopology(text, file);
}

/** Compile text that must be invalid; returns the ValidationError's diagnostics. */
export function rejects(text: string, file = FILE): Diagnostic[] {
  try {
    compileTopology(text, file);
  } catch (e) {
    if (e instanceof ValidationError) return e.diagnostics;
    throw e;
  }
  throw new Error("expected a ValidationError, the file was accepted");
}

export const CLI = join(REPO_ROOT, "dist", "src", "cli", "main.js");

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run `node dist/src/cli/main.js ...args` (argv array, no shell) from the repo root. */
export function runCli(args: string[], cwd = REPO_ROOT): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
