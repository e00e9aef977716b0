// Reading topology files for the CLI, and printing for people or programs.
import { readFileSync } from "node:fs";
import { EXIT, UserError } from "../errors.js";
import { type Compiled, compileTopology } from "../load/compile.js";

export function readTopology(path: string): Compiled {
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
  return compileTopology(text, path);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
