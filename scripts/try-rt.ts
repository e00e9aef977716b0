import { readFileSync } from "node:fs";
import { renderShellScript } from "../src/export/shell.js";
import { importScript } from "../src/import/index.js";
import { compileTopology } from "../src/load/compile.js";
import type { Lab } from "../src/model/lab.js";
export function norm(lab: Lab) {
  return JSON.parse(JSON.stringify(lab, (k, v) => (k === "spec" ? undefined : v)));
}
const items: { file: string; text: string }[] = process.argv[2]!.endsWith(".json")
  ? JSON.parse(readFileSync(process.argv[2]!, "utf8"))
  : process.argv.slice(2).map((f) => ({ file: f, text: readFileSync(f, "utf8") }));
let ok = 0;
let bad = 0;
for (const [i, it] of items.entries()) {
  const { lab } = compileTopology(it.text, it.file);
  const sh = renderShellScript(lab, {
    stateDir: `/run/qnet/${lab.name}`,
    source: it.file,
    facts: { kvm: false, vhost: false },
  });
  try {
    const r = await importScript(sh, "x.sh");
    const a = JSON.stringify(norm(lab));
    const b = JSON.stringify(norm(r.compiled.lab));
    if (a === b) ok++;
    else {
      bad++;
      console.log(
        `#${i} DIFF ${it.file}\n${it.text.slice(0, 400)}\n--- orig\n${a.slice(0, 1500)}\n--- imported\n${b.slice(0, 1500)}`,
      );
      if (process.env.SHOW) console.log(r.yaml);
    }
  } catch (e) {
    bad++;
    console.log(
      `#${i} ERROR ${it.file}: ${(e as Error).message.slice(0, 600)}\n${it.text.slice(0, 300)}`,
    );
  }
}
console.log(`ok ${ok} bad ${bad}`);
