// `qnet import`: a shell script or pasted QEMU lines in, a commented topology file out (validated).
import { ValidationError } from "../errors.js";
import { type Compiled, compileTopology } from "../load/compile.js";
import type { TopologyFile } from "../model/schema.js";
import { type InferOptions, inferTopology } from "./infer.js";
import { formatFinding, type ImportFinding } from "./located.js";
import { renderImportedYaml } from "./render-yaml.js";
import { readShellScript } from "./shell-script.js";

export interface ImportResult {
  /** The topology file's text (YAML with comments). */
  yaml: string;
  topology: TopologyFile;
  compiled: Compiled;
  /** Located findings in the script: errors (the import failed), warnings, notes. */
  findings: ImportFinding[];
}

/** A script qnet cannot import: every error, located as `file:line:column`. */
export class ImportError extends Error {
  override name = "ImportError";
  constructor(
    readonly file: string,
    readonly findings: ImportFinding[],
  ) {
    super(
      findings
        .filter((f) => f.severity === "error")
        .map((f) => formatFinding(file, f))
        .join("\n"),
    );
  }
}

/**
 * Import `text` (named `file` in messages). Throws ImportError for a script with errors, and
 * ValidationError when the topology it yields is not valid (the messages then locate the generated file).
 */
export async function importScript(
  text: string,
  file: string,
  opts: Omit<InferOptions, "file"> = {},
): Promise<ImportResult> {
  const script = await readShellScript(text);
  const inf = inferTopology(script, { ...opts, file });
  const findings = inf.findings.sort(
    (a, b) => a.loc.line - b.loc.line || a.loc.column - b.loc.column,
  );
  if (findings.some((f) => f.severity === "error")) throw new ImportError(file, findings);
  const empty =
    Object.keys(inf.topology.vms).length === 0 &&
    Object.keys(inf.topology.networks).length === 0 &&
    !inf.topology.netns &&
    !inf.fromQnetExport;
  if (empty)
    throw new ImportError(file, [
      ...findings,
      {
        severity: "error",
        loc: { line: 1, column: 1 },
        message:
          "found no QEMU command line and no host network command (ip, brctl, ifconfig, nmcli): nothing to import",
      },
    ]);
  const yaml = renderImportedYaml(inf, { file, findings });
  const out = file === "-" ? "imported.yaml" : `${file.replace(/\.[^./]*$/, "")}.yaml`;
  const compiled = compileTopology(yaml, out);
  return { yaml, topology: inf.topology, compiled, findings };
}

export { ValidationError };
