// Shared CLI plumbing: reading topology files, finding running labs, printing for people or programs.
// Heavy modules (the compiler: yaml and zod) load only when a command needs them, to keep start-up fast.
import { readFileSync } from "node:fs";
import { EXIT, UserError } from "../errors.js";
import { labStateDir, listLabs, readLabRecord } from "../host/state.js";
import type { Compiled } from "../load/compile.js";

export async function readTopology(path: string): Promise<Compiled> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(
      `cannot read topology file ${path}: ${code === "ENOENT" ? "no such file" : (e as Error).message}`,
      undefined,
      EXIT.usage,
    );
  }
  const { compileTopology } = await import("../load/compile.js");
  const compiled = compileTopology(text, path);
  // Inside a rootless lab's namespaces, the file's netns, tap owners and NAT uplinks do not apply.
  const { insideInfo } = await import("../rootless/inside.js");
  if (!insideInfo()) return compiled;
  const { rootlessLab } = await import("../kinds/rootless.js");
  return { ...compiled, lab: rootlessLab(compiled.lab).lab };
}

/** The state directory and record of a lab that is up, or a usage error naming the labs that are. */
export function runningLab(stateRoot: string, name: string) {
  const dir = labStateDir(stateRoot, name);
  const record = readLabRecord(dir);
  if (!record) {
    const known = listLabs(stateRoot).map((l) => l.name);
    throw new UserError(
      `no lab named "${name}" is up`,
      known.length ? `known labs: ${known.join(", ")}` : "start one with `qnet up FILE`",
      EXIT.usage,
    );
  }
  return { dir, record };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** The "Examples:" block of a command's --help. */
export const examples = (...lines: string[]) =>
  `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`;
