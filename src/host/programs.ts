// The programs qnet runs and the Debian packages they come from (packages/debian.json, the one list that
// ./setup, `qnet doctor --fix` and .ci/run install from): found without spawning anything, and named with
// their package when missing.
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT, UserError } from "../errors.js";

export interface PackageEntry {
  package: string;
  /** Its name on Ubuntu, where that differs. */
  ubuntu?: string;
  programs: string[];
  /** What qnet uses it for, for people. */
  for: string;
  /** Needed by every lab (false: by some features only). */
  required: boolean;
}

export interface PackageList {
  runtime: PackageEntry[];
  /** What only the test suite needs. */
  test: string[];
}

/** dist/src/host/ → the package root. */
export const PACKAGE_LIST_FILE = fileURLToPath(
  new URL("../../../packages/debian.json", import.meta.url),
);

let list: PackageList | undefined;
export function packageList(): PackageList {
  list ??= JSON.parse(readFileSync(PACKAGE_LIST_FILE, "utf8")) as PackageList;
  return list;
}

/** The package a program comes from, by its base name. */
export function packageOf(program: string): PackageEntry | null {
  const base = program.split("/").pop()!;
  return packageList().runtime.find((p) => p.programs.includes(base)) ?? null;
}

/** Where root's programs live: searched even when PATH lacks them (a user's PATH on Debian). */
const SBIN = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/** The PATH qnet gives the programs it runs, and searches: the caller's, plus the sbin directories. */
export function programPath(path = process.env.PATH ?? ""): string {
  const dirs = path.split(delimiter).filter(Boolean);
  return [...new Set([...dirs, ...SBIN, "/usr/bin", "/bin"])].join(delimiter);
}

/** The file `program` runs (a name on programPath, or a path), or null when there is none. */
export function findProgram(program: string, path = programPath()): string | null {
  const candidates = program.includes("/")
    ? [program]
    : path.split(delimiter).map((d) => join(d, program));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // not here
    }
  }
  return null;
}

/** The error for programs that are not installed: each with its package, and the one command to run. */
export function missingProgramsError(programs: readonly string[], needs?: string): UserError {
  const named = programs.map((p) => {
    const pkg = packageOf(p);
    return { program: p, package: pkg?.package ?? null };
  });
  const list = named
    .map((m) => (m.package ? `${m.program} (Debian package ${m.package})` : m.program))
    .join(", ");
  const pkgs = [...new Set(named.flatMap((m) => (m.package ? [m.package] : [])))];
  return new UserError(
    `${needs ? `${needs} needs` : "qnet needs"} ${programs.length === 1 ? "a program" : "programs"} this host does not have: ${list}`,
    pkgs.length
      ? `install ${pkgs.length === 1 ? "it" : "them"}: apt-get install --no-install-recommends ${pkgs.join(" ")} (or: qnet doctor --fix)`
      : "install it, or put it on PATH",
    EXIT.environment,
  );
}

/** Throw missingProgramsError for those of `programs` that cannot be found. */
export function requirePrograms(programs: Iterable<string>, needs?: string): void {
  const missing = [...new Set(programs)].filter((p) => findProgram(p) === null);
  if (missing.length) throw missingProgramsError(missing, needs);
}
