import { readFileSync } from "node:fs";
import { importScript } from "../src/import/index.js";

const [file, name] = process.argv.slice(2);
const r = await importScript(readFileSync(file!, "utf8"), file!, name ? { name } : {});
process.stdout.write(r.yaml);
for (const f of r.findings)
  console.error(`${f.loc.line}:${f.loc.column} ${f.severity}: ${f.message}`);
