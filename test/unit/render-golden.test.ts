// Golden files of every renderer for every example: VM args, diagrams (ASCII, Mermaid, DOT), plan (text, JSON).
// Regenerate with QNET_UPDATE_GOLDEN=1 (npm run golden:update), then read the diff carefully.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { planView, renderPlanText } from "../../src/lab/plan-view.js";
import type { HostFacts } from "../../src/model/lab.js";
import { renderAscii, renderDot, renderMermaid } from "../../src/render/diagram.js";
import { networkArgs } from "../../src/render/qemu-args.js";
import { assertGolden, REPO_ROOT } from "../helpers/golden.js";
import { compile } from "../helpers/topology.js";

/** Fixed facts and state root, so the goldens are the same on any machine. */
const FACTS: HostFacts = { kvm: false, vhost: false };
const FAST: HostFacts = { kvm: true, vhost: true };
const STATE_ROOT = "/run/qnet";

/** `-netdev X` / `-device Y` one pair per line, as `qnet args` prints them. */
const argsText = (argv: string[]) => {
  const lines: string[] = [];
  for (let i = 0; i < argv.length; i += 2) lines.push(`${argv[i]} ${argv[i + 1]}`);
  return `${lines.join("\n")}\n`;
};

const examples = readdirSync(join(REPO_ROOT, "examples"))
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => f.slice(0, -".yaml".length))
  .sort();

test("there are examples to cover", () => {
  if (examples.length < 4) throw new Error(`only ${examples.length} examples found`);
});

for (const name of examples) {
  describe(`golden: examples/${name}.yaml`, () => {
    const file = `examples/${name}.yaml`;
    const { lab } = compile(readFileSync(join(REPO_ROOT, file), "utf8"), file);
    const stateDir = join(STATE_ROOT, lab.name);

    for (const vm of lab.vms) {
      test(`args of ${vm.name}`, () =>
        assertGolden(`${name}.args.${vm.name}.txt`, argsText(networkArgs(lab, vm, FACTS))));
      test(`args of ${vm.name} with vhost-net usable`, () =>
        assertGolden(`${name}.args.${vm.name}.vhost.txt`, argsText(networkArgs(lab, vm, FAST))));
    }
    test("diagram, ASCII", () => assertGolden(`${name}.diagram.txt`, renderAscii(lab)));
    test("diagram, Mermaid", () => assertGolden(`${name}.diagram.mmd`, renderMermaid(lab)));
    test("diagram, DOT", () => assertGolden(`${name}.diagram.dot`, renderDot(lab)));
    test("plan, text", () =>
      assertGolden(`${name}.plan.txt`, renderPlanText(planView(lab, FACTS, stateDir))));
    test("plan, JSON", () =>
      assertGolden(
        `${name}.plan.json`,
        `${JSON.stringify(planView(lab, FACTS, stateDir), null, 2)}\n`,
      ));
    test("plan, text, with KVM and vhost-net", () =>
      assertGolden(`${name}.plan.kvm-vhost.txt`, renderPlanText(planView(lab, FAST, stateDir))));
  });
}
