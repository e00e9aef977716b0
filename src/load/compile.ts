// Text to Lab: parse, validate (all errors, located) and resolve, or throw a ValidationError.
import { type Diagnostic, ValidationError } from "../errors.js";
import type { Lab } from "../model/lab.js";
import { resolveLab } from "../resolve/resolve.js";
import { parseTopologyText } from "./parse.js";
import { validateTopology } from "./validate.js";

export interface Compiled {
  lab: Lab;
  warnings: Diagnostic[];
}

/** Compile a topology file's text. `file` names it in messages. Pure: reads nothing but `text`. */
export function compileTopology(text: string, file: string): Compiled {
  const { topology, diagnostics } = validateTopology(parseTopologyText(text, file));
  if (!topology) throw new ValidationError(diagnostics);
  return {
    lab: resolveLab(topology),
    warnings: diagnostics.filter((d) => d.severity === "warning"),
  };
}
