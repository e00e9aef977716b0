import { readFileSync } from "node:fs";
import { renderShellScript } from "../src/export/shell.js";
import { compileTopology } from "../src/load/compile.js";

const file = process.argv[2]!;
const { lab } = compileTopology(readFileSync(file, "utf8"), file);
process.stdout.write(
  renderShellScript(lab, {
    stateDir: `/run/qnet/${lab.name}`,
    source: file,
    facts: { kvm: false, vhost: false },
  }),
);
