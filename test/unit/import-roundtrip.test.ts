// Round trip: import(export shell(t)) is t, for every example, every topology the test suite compiles
// (test/fixtures/test-suite-topologies.json) and generated topologies with hostile paths and arguments.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { renderShellScript } from "../../src/export/shell.js";
import { importScript } from "../../src/import/index.js";
import type { Lab } from "../../src/model/lab.js";
import { REPO_ROOT } from "../helpers/golden.js";
import { compile } from "../helpers/topology.js";

/**
 * The lab without what is only text: a forward as written (`tcp:2222:22` vs `tcp:127.0.0.1:2222:22`),
 * and an empty kernel line or SSH key, which reach nothing (qnet passes no -append and writes no key).
 */
const comparable = (lab: Lab) =>
  JSON.parse(
    JSON.stringify(lab, (k, v) =>
      k === "spec" ? undefined : (k === "append" || k === "sshKey") && v === "" ? null : v,
    ),
  ) as unknown;

async function roundTrip(text: string, file: string): Promise<void> {
  const { lab } = compile(text, file);
  const script = renderShellScript(lab, {
    stateDir: `/run/qnet/${lab.name}`,
    source: file,
    facts: { kvm: false, vhost: false },
  });
  const r = await importScript(script, `${lab.name}.sh`);
  assert.deepEqual(comparable(r.compiled.lab), comparable(lab), `${file}\n${text}\n---\n${r.yaml}`);
  // Same networks, VMs, NICs, MACs, addresses and forwards, named the same (a few direct checks too).
  assert.deepEqual(
    r.compiled.lab.vms.flatMap((v) => v.nics.map((n) => [v.name, n.network, n.mac, n.ip, n.model])),
    lab.vms.flatMap((v) => v.nics.map((n) => [v.name, n.network, n.mac, n.ip, n.model])),
  );
}

describe("round trip through export shell and import", () => {
  const examples = readdirSync(join(REPO_ROOT, "examples")).filter((f) => f.endsWith(".yaml"));
  test("there are examples", () => assert.ok(examples.length >= 4));
  for (const f of examples) {
    test(`examples/${f}`, async () => {
      await roundTrip(readFileSync(join(REPO_ROOT, "examples", f), "utf8"), `examples/${f}`);
    });
  }

  // Every distinct topology text the unit tests compile (recorded by running them with compileTopology
  // instrumented): unused networks of every type, macvtap, netns, disks with SSH keys, 100-VM labs,
  // 63-character names, fixed and allocated addresses, forwards on every address.
  const corpus = JSON.parse(
    readFileSync(join(REPO_ROOT, "test", "fixtures", "test-suite-topologies.json"), "utf8"),
  ) as { from: string; text: string }[];
  test("the test suite's topologies are all here", () => assert.ok(corpus.length >= 90));
  test(`every topology of the test suite (${corpus.length})`, async () => {
    for (const [i, t] of corpus.entries()) await roundTrip(t.text, `test-suite #${i} (${t.from})`);
  });

  test("generated topologies with hostile paths, kernel lines, SSH keys and QEMU arguments", async () => {
    const hostile = fc.oneof(
      fc.constantFrom(
        "a,b",
        "it's",
        'say "hi"',
        "$(id)",
        "`id`",
        "a b",
        "x\ny",
        "ü名",
        "\\",
        "--",
        "-m",
      ),
      fc.string({ unit: "grapheme", maxLength: 10 }).filter((s) => !s.includes("\u0000")),
    );
    const path = hostile.map((s) => `/img/${s}`);
    const nic = (nets: string[]) =>
      fc.record(
        {
          network: fc.constantFrom(...nets),
          model: fc.constantFrom("virtio-net-pci", "e1000", "rtl8139"),
        },
        { requiredKeys: ["network"] },
      );
    const nets = {
      lan: { type: "bridge", subnet: "10.7.0.0/24", nat: true, forwards: ["tcp:8022:a:22"] },
      iso: { type: "bridge", subnet: "10.8.0.0/24", dhcp: false },
      l2: { type: "bridge", subnet: "10.9.0.0/24", gateway: "none", dhcp: false },
      wan: {
        type: "user",
        subnet: "10.0.3.0/24",
        forwards: ["udp:0.0.0.0:5353:53"],
        restrict: true,
      },
      out: { type: "bridged", uplink: "eth9" },
    };
    const names = Object.keys(nets);
    const vm = fc.record(
      {
        nics: fc.array(nic(names), { minLength: 1, maxLength: 3 }),
        memory: fc.constantFrom(128, 256, 1024),
        cpus: fc.constantFrom(1, 2, 4),
        kernel: path,
        initrd: path,
        append: hostile,
        qemu: fc.record(
          {
            machine: fc.constantFrom("q35", "pc", "pc,smm=off"),
            args: fc.array(hostile, { maxLength: 3 }),
            binary: fc.constantFrom("qemu-system-x86_64", "/opt/qemu/bin/qemu-system-x86_64"),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: ["nics"] },
    );
    const disk = fc.record({
      nics: fc.array(nic(names), { maxLength: 2 }),
      disk: path,
      sshKey: hostile,
    });
    const samples = fc.sample(fc.record({ a: vm, b: fc.oneof(vm, disk), c: disk }), {
      seed: 18,
      numRuns: 60,
    });
    let checked = 0;
    for (const vms of samples) {
      // Forwards to `a` need it on lan; bridged and user NICs do not mix with a second user NIC.
      vms.a.nics[0] = { network: "lan" };
      const text = stringify({ name: "gen", networks: nets, vms });
      let ok = true;
      try {
        compile(text, "gen.yaml");
      } catch {
        ok = false; // e.g. two VMs forwarding the same host port on the user network
      }
      if (!ok) continue;
      await roundTrip(text, "generated");
      checked++;
    }
    assert.ok(checked >= 30, `only ${checked} generated topologies were valid`);
  });
});
