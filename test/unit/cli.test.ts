// The qnet CLI as users run it (node dist/src/cli/main.js): exit codes, what goes to stdout and stderr.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { EXIT } from "../../src/errors.js";
import { runCli } from "../helpers/topology.js";

const tmp = mkdtempSync(join(tmpdir(), "qnet-cli-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const f = join(tmp, name);
  writeFileSync(f, text);
  return f;
};

const INVALID = [
  "name: lab",
  "networks:",
  "  lan: { type: bridge, subnet: 10.0.2.0/24, bridg: br0 }",
  "vms:",
  "  vm0: { nics: [{ network: lan, ip: 10.0.3.2 }] }",
  "  vm1: { nics: [{ network: nope }] }",
  "",
].join("\n");

describe("qnet validate", () => {
  test("a valid example: exit 0, a one-line summary on stdout, nothing on stderr", () => {
    const r = runCli(["validate", "examples/private-lan.yaml"]);
    assert.equal(r.status, EXIT.ok);
    assert.equal(r.stdout, "examples/private-lan.yaml: valid (1 networks, 2 VMs)\n");
    assert.equal(r.stderr, "");
  });
  test("an invalid file: exit 3, only the located diagnostics on stderr, nothing on stdout", () => {
    const f = write("schema-bad.yaml", INVALID);
    const r = runCli(["validate", f]);
    assert.equal(r.status, EXIT.invalid);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      // The shape error, and the semantic error of an entry whose shape is right (vm0's address on the
      // misshapen network lan is not judged).
      `${f}:3:45: error: networks.lan.bridg: unknown key "bridg" (did you mean "bridge"?); allowed here: type, bridge, subnet, gateway, dhcp, nat, uplink, dns, forwards, home, vni, impair\n` +
        `${f}:6:28: error: vms.vm1.nics[0].network: unknown network "nope"; defined: lan\n`,
    );
  });
  test("semantic errors: every one reported, one line each, exit 3", () => {
    const f = write("semantic-bad.yaml", INVALID.replace(", bridg: br0", ""));
    const r = runCli(["validate", f]);
    assert.equal(r.status, EXIT.invalid);
    assert.equal(r.stdout, "");
    const lines = r.stderr.trimEnd().split("\n");
    assert.deepEqual(lines, [
      `${f}:5:37: error: vms.vm0.nics[0].ip: 10.0.3.2 is outside network lan's subnet 10.0.2.0/24`,
      `${f}:6:28: error: vms.vm1.nics[0].network: unknown network "nope"; defined: lan`,
    ]);
  });
  test("malformed YAML: exit 3, a located message, no stack trace", () => {
    const f = write("malformed.yaml", "name: lab\nnetworks: {\nvms: [\n");
    const r = runCli(["validate", f]);
    assert.equal(r.status, EXIT.invalid);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      new RegExp(`^${f.replaceAll(".", "\\.")}:\\d+:\\d+: error: .*malformed YAML: `),
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
  test("warnings go to stderr and do not fail", () => {
    const f = write(
      "warn.yaml",
      "name: lab\nnetworks:\n  lan: { type: bridge, subnet: 10.0.2.0/24 }\nvms:\n  vm0: { nics: [] }\n",
    );
    const r = runCli(["validate", f]);
    assert.equal(r.status, EXIT.ok);
    assert.equal(r.stdout, `${f}: valid (1 networks, 1 VMs)\n`);
    assert.equal(
      r.stderr,
      `${f}:5:16: warning: vms.vm0.nics: the VM has no NIC: it will not be on any network\n`,
    );
  });
  test("--json prints the resolved lab and nothing on stderr", () => {
    const r = runCli(["validate", "examples/services.yaml", "--json"]);
    assert.equal(r.status, EXIT.ok);
    const out = JSON.parse(r.stdout) as { valid: boolean; lab: { name: string } };
    assert.equal(out.valid, true);
    assert.equal(out.lab.name, "svc");
    assert.equal(r.stderr, "");
  });
  test("a missing file is a usage error (exit 2) with a message, not a stack trace", () => {
    const r = runCli(["validate", join(tmp, "nope.yaml")]);
    assert.equal(r.status, EXIT.usage);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^qnet: cannot read topology file .*nope\.yaml: no such file\n$/);
  });
});

describe("other commands", () => {
  test("plan --json is machine-readable and carries every VM's argv", () => {
    const r = runCli([
      "plan",
      "examples/private-lan.yaml",
      "--json",
      "--state-dir",
      "/tmp/qnet-cli-state",
    ]);
    assert.equal(r.status, EXIT.ok, r.stderr);
    const plan = JSON.parse(r.stdout) as {
      stateDir: string;
      vms: { name: string; argv: string[] }[];
    };
    assert.equal(plan.stateDir, "/tmp/qnet-cli-state/lab");
    assert.deepEqual(
      plan.vms.map((v) => v.name),
      ["vm0", "vm1"],
    );
    assert.ok(plan.vms[0]!.argv.includes("virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56"));
  });
  test("plan of an invalid file: exit 3, nothing on stdout", () => {
    const r = runCli(["plan", write("plan-bad.yaml", INVALID)]);
    assert.equal(r.status, EXIT.invalid);
    assert.equal(r.stdout, "");
  });
  test("args of an unknown VM: exit 2 with the VMs listed", () => {
    const r = runCli(["args", "examples/private-lan.yaml", "vm9"]);
    assert.equal(r.status, EXIT.usage);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /no VM named "vm9".*\nhint: VMs: vm0, vm1\n/);
  });
  test("diagram in every format; an unknown format is a usage error", () => {
    for (const format of ["ascii", "mermaid", "dot"]) {
      const r = runCli(["diagram", "examples/services.yaml", "--format", format]);
      assert.equal(r.status, EXIT.ok, r.stderr);
      assert.match(r.stdout, /vm0/);
    }
    const bad = runCli(["diagram", "examples/services.yaml", "--format", "svg"]);
    assert.equal(bad.status, EXIT.usage);
    assert.equal(bad.stdout, "");
  });
  for (const cmd of ["validate", "plan", "args", "diagram"]) {
    test(`${cmd} --help shows an example and exits 0`, () => {
      const r = runCli([cmd, "--help"]);
      assert.equal(r.status, EXIT.ok);
      assert.match(r.stdout, new RegExp(`Usage: qnet ${cmd} `));
      assert.match(r.stdout, /Examples:\n {2}\$ qnet /);
    });
  }
  test("an unknown command is a usage error", () => {
    const r = runCli(["frobnicate"]);
    assert.equal(r.status, EXIT.usage);
    assert.equal(r.stdout, "");
  });
});
