// Hostile input, property-based: no input crashes the loader, validator or a renderer; every rejection is
// located; what is accepted never breaks a QEMU option or the shell quoting of a printed command line.
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { after, describe, test } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { reportError } from "../../src/cli/errors.js";
import {
  EXIT,
  formatArgv,
  formatDiagnostic,
  UserError,
  ValidationError,
} from "../../src/errors.js";
import { emptyObservation } from "../../src/facts/types.js";
import { labStateDir } from "../../src/host/state.js";
import { planLab } from "../../src/kinds/index.js";
import { planView, renderPlanText } from "../../src/lab/plan-view.js";
import { compileTopology } from "../../src/load/compile.js";
import type { HostFacts, Lab } from "../../src/model/lab.js";
import { isPlainPath } from "../../src/model/names.js";
import { vmFiles } from "../../src/model/paths.js";
import { renderCloudInit } from "../../src/render/cloud-init.js";
import { renderAscii, renderDot, renderMermaid } from "../../src/render/diagram.js";
import { acceptRules, iptablesSpec, nftRuleText } from "../../src/render/forward-accept.js";
import { builtinAppend } from "../../src/render/guest-boot.js";
import { renderHostsBlock } from "../../src/render/hosts-block.js";
import { networkArgs } from "../../src/render/qemu-args.js";
import { parseQemuOpts } from "../helpers/qemu-opts.js";
import { shellWords } from "../helpers/shell-words.js";

/** Inputs generated per property; printed at the end for the README's reliability section. */
export const counts = {
  rawText: 0,
  mutatedExamples: 0,
  structured: 0,
  accepted: 0,
  rejected: 0,
  oversized: 0,
};
after(() => {
  const total = counts.rawText + counts.mutatedExamples + counts.structured + counts.oversized;
  console.log(`hostile-input: ${total} inputs generated ${JSON.stringify(counts)}`);
});

const SEED = 20240610;
const FACTS: HostFacts[] = [
  { kvm: false, vhost: false },
  { kvm: true, vhost: true },
];

/** Names a plain object would take from its prototype: every name in a file is fuzzed with them. */
const PROTO = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty"];

/** Values that break naive shells, QEMU options, YAML and config files. */
const HOSTILE = [
  "a,b",
  "a,,b",
  ",",
  "a b",
  'a"b',
  "a'b",
  "a\nb",
  "$(reboot)",
  "`id`",
  "-rf",
  "--help",
  "-device",
  "ünïcödé",
  "名前",
  "a;b",
  "a|b",
  "",
  " ",
  "a=b",
  "../../etc/passwd",
  "a\u0000b",
  "\t",
  "a\\b",
  "#x",
  "*x",
  "&x",
  "e1000,romfile=/x",
  "x".repeat(300),
];

const hostileString = fc.oneof(
  fc.constantFrom(...HOSTILE),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 10 }),
  fc
    .tuple(fc.constantFrom("vm", "lan", "/img/", "br"), fc.constantFrom(...HOSTILE))
    .map(([a, b]) => a + b),
);

type Outcome = "accepted" | "rejected";

/** Check one located rejection: every diagnostic has a line, a column and a message; no stack trace. */
function checkRejection(e: ValidationError): void {
  assert.ok(
    e.diagnostics.some((d) => d.severity === "error"),
    "a rejection has at least one error",
  );
  for (const d of e.diagnostics) {
    assert.ok(Number.isInteger(d.line) && d.line >= 1, formatDiagnostic(d));
    assert.ok(Number.isInteger(d.column) && d.column >= 1, formatDiagnostic(d));
    assert.ok(typeof d.message === "string" && d.message.length > 0);
    assert.ok(typeof d.path === "string");
  }
  let out = "";
  assert.equal(
    reportError(e, (s) => (out += s)),
    EXIT.invalid,
  );
  assert.doesNotMatch(out, /\n\s+at .*:\d+:\d+/, "no stack trace");
}

/**
 * The whole plan of an accepted lab against an empty host and one whose default route and br_netfilter
 * are there: every kind renders (ip -batch lines, the nft ruleset, dnsmasq configuration, sysctls, the
 * hosts block, VM starts) without an internal error; and the guest's inputs (cloud-init, kernel line).
 */
function checkPlans(lab: Lab, stateDir: string, machine: HostFacts): void {
  if (!isPlainPath(stateDir)) {
    // The CLI and library never plan with such a directory: labStateDir refuses it, or resolves a
    // plain one (a relative root).
    let dir: string;
    try {
      dir = labStateDir(dirname(stateDir), lab.name);
    } catch (e) {
      assert.ok(e instanceof UserError, String(e));
      return;
    }
    assert.ok(isPlainPath(dir), dir);
    return;
  }
  const env = {
    lab,
    stateDir,
    dataDir: "/var/lib/qnet",
    netns: lab.netns,
    vms: true,
    cold: false,
    machine,
    bridgeNfPerNetns: true,
    rootless: null,
  };
  for (const uplink of [null, "eth0"]) {
    const obs = {
      ...emptyObservation(lab.netns, true),
      defaultRouteDev: uplink,
      sysctls: new Map([["net/bridge/bridge-nf-call-iptables", "1"]]),
    };
    const plan = planLab(env, obs);
    for (const a of plan.actions) {
      JSON.stringify(a);
      for (const line of a.batch ?? []) assert.doesNotMatch(line, /[\n\r#"'\\]/, line);
    }
  }
  for (const vm of lab.vms) {
    const seed = renderCloudInit(lab, vm);
    for (const text of Object.values(seed)) assert.equal(typeof text, "string");
    assert.doesNotMatch(builtinAppend(lab, vm), /[\n"'$`]/);
  }
  for (const r of acceptRules(lab)) {
    iptablesSpec(lab.name, r);
    assert.doesNotMatch(nftRuleText(lab.name, r), /\n/);
  }
  renderHostsBlock(lab);
}

/** Render everything for an accepted lab and check the QEMU options and shell quoting read back. */
function checkAccepted(lab: Lab, stateDir: string): void {
  for (const facts of FACTS) {
    checkPlans(lab, stateDir, facts);
    const view = planView(lab, facts, stateDir);
    renderPlanText(view);
    JSON.stringify(view);
    for (const render of [renderAscii, renderMermaid, renderDot])
      assert.equal(typeof render(lab), "string");
    for (const [vi, vm] of lab.vms.entries()) {
      const argv = view.vms[vi]!.argv;
      for (const a of argv) assert.equal(typeof a, "string");
      // Printed command lines read back as the same argv.
      assert.deepEqual(shellWords(formatArgv(argv)), argv);
      const net = networkArgs(lab, vm, facts);
      assert.deepEqual(view.vms[vi]!.network, net);
      vm.nics.forEach((nic, i) => {
        const netdev = parseQemuOpts(net[4 * i + 1]!);
        const device = parseQemuOpts(net[4 * i + 3]!);
        const nd = new Map(netdev.pairs);
        assert.equal(nd.get("id"), nic.netdevId);
        if (nic.tap && !(nic.networkType === "bridged" && netdev.pairs.some(([k]) => k === "fd"))) {
          assert.equal(nd.get("ifname"), nic.tap);
        }
        if (nic.networkType === "user") assert.equal(nd.get("hostname"), vm.name);
        assert.equal(device.head, nic.model);
        assert.deepEqual(device.pairs.slice(0, 2), [
          ["netdev", nic.netdevId],
          ["mac", nic.mac],
        ]);
      });
      const files = vmFiles(stateDir, vm.name);
      const opts = (flag: string) =>
        argv.flatMap((a, i) => (argv[i - 1] === flag ? [parseQemuOpts(a)] : []));
      const chardevPaths = opts("-chardev").map((o) => new Map(o.pairs).get("path"));
      assert.deepEqual(chardevPaths, [files.qmp, files.serial, files.qga]);
      const drives = opts("-drive").map((o) => new Map(o.pairs).get("file"));
      if (vm.guest.kind === "disk") assert.deepEqual(drives, [vm.guest.disk, files.seed]);
      else {
        assert.deepEqual(drives, []);
        if (vm.guest.kind === "kernel")
          assert.equal(argv[argv.indexOf("-kernel") + 1], vm.guest.kernel);
      }
      assert.equal(
        parseQemuOpts(argv[argv.indexOf("-name") + 1]!).head,
        `guest=${lab.name}:${vm.name}`,
      );
    }
  }
}

/** The whole pipeline on one text: compile, then render or check the rejection. Anything else throws. */
function exercise(text: string, stateDir = "/run/qnet/lab"): Outcome {
  let lab: Lab;
  try {
    lab = compileTopology(text, "fuzz.yaml").lab;
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    checkRejection(e);
    counts.rejected++;
    return "rejected";
  }
  checkAccepted(lab, stateDir);
  counts.accepted++;
  return "accepted";
}

const EXAMPLE = `name: lab
networks:
  lan: { type: bridge, subnet: 10.0.2.0/24, gateway: 10.0.2.1, forwards: ["tcp:8022:vm0:22"] }
  u: { type: user, forwards: ["tcp:2222:22", "udp:0.0.0.0:5353:53"] }
  wan: { type: bridged, uplink: eth0, bridge: br0 }
vms:
  vm0:
    memory: 512
    cpus: 2
    nics:
      - { network: lan, ip: 10.0.2.2, mac: "52:54:00:12:34:56" }
      - { network: u, model: e1000 }
  vm1: { disk: "/img/a.qcow2", nics: [{ network: lan }, { network: wan }] }
`;

describe("hostile input (property-based)", () => {
  test("the base example is accepted (so mutations start from a valid file)", () => {
    assert.equal(exercise(EXAMPLE), "accepted");
  });

  test("random YAML-ish text", () => {
    const alphabet = fc.constantFrom(..."abc01:-{}[],\"' \n\t#&*!|>%@?.$()=/\\ü名\u0000".split(""));
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 200 }), (text) => {
        counts.rawText++;
        exercise(text);
      }),
      { numRuns: 3000, seed: SEED },
    );
  });

  test("an example with random edits (insert, delete, replace)", () => {
    const edit = fc.record({
      at: fc.nat({ max: EXAMPLE.length }),
      del: fc.nat({ max: 8 }),
      ins: fc.oneof(
        fc.constantFrom(...HOSTILE, ":", "- ", "{", "]", "\n  ", "10.0.2.2", "e1000"),
        fc.string({ maxLength: 6 }),
      ),
    });
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        counts.mutatedExamples++;
        let text = EXAMPLE;
        for (const e of edits) text = text.slice(0, e.at) + e.ins + text.slice(e.at + e.del);
        exercise(text);
      }),
      { numRuns: 3000, seed: SEED },
    );
  });

  test("structured topologies with hostile names and values, as YAML and JSON", () => {
    const pick = <T>(good: T[]) =>
      fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...good) },
        { weight: 1, arbitrary: hostileString },
      );
    const netName = pick(["lan", "wan", "u", ...PROTO]);
    const forward = pick([
      "tcp:8022:vm0:22",
      "tcp:8023:constructor:22",
      "tcp:8024:__proto__:22",
      "udp:5353:53",
      "tcp:0.0.0.0:80:vm1:80",
      "tcp:2222:22",
      "tcp:1:70000",
    ]);
    const network = fc.oneof(
      fc.record(
        {
          type: fc.constant("user"),
          subnet: pick(["10.0.2.0/24", "10.9.0.0/16"]),
          forwards: fc.array(forward, { maxLength: 2 }),
          restrict: fc.boolean(),
          dns: pick(["10.0.2.3", "10.0.3.3"]),
        },
        { requiredKeys: ["type"] },
      ),
      fc.record(
        {
          type: fc.constant("bridge"),
          subnet: pick(["10.0.2.0/24", "10.0.3.0/30", "192.168.0.0/16"]),
          gateway: pick(["10.0.2.1", "none", "10.0.2.254"]),
          bridge: pick(["br0", "br1", "qnbr-x"]),
          dhcp: fc.boolean(),
          nat: fc.boolean(),
          forwards: fc.array(forward, { maxLength: 2 }),
        },
        { requiredKeys: ["type", "subnet"] },
      ),
      fc.record(
        {
          type: fc.constant("bridged"),
          uplink: pick(["eth0", "eth1"]),
          bridge: pick(["br0", "br2"]),
          mode: pick(["bridge", "macvtap"]),
        },
        { requiredKeys: ["type", "uplink"] },
      ),
    );
    const mac = fc.oneof(
      fc
        .tuple(fc.nat(255), fc.nat(255), fc.nat(255))
        .map(
          ([a, b, c]) =>
            `52:54:00:${[a, b, c].map((x) => x.toString(16).padStart(2, "0")).join(":")}`,
        ),
      hostileString,
    );
    const nic = fc.record(
      {
        network: netName,
        ip: pick(["10.0.2.5", "10.0.2.6", "10.0.3.2", "10.9.0.9"]),
        mac,
        model: pick(["e1000", "virtio-net-pci", "rtl8139"]),
      },
      { requiredKeys: ["network"] },
    );
    const path = pick(["/boot/vmlinuz", "/img/a,b.qcow2", "/x y/z", "/img/$(id).img", "/img/-rf"]);
    const vm = fc.record(
      {
        nics: fc.array(nic, { maxLength: 3 }),
        kernel: path,
        initrd: path,
        append: hostileString,
        disk: path,
        memory: fc.oneof(fc.integer({ min: 0, max: 4096 }), hostileString),
        cpus: fc.integer({ min: 0, max: 8 }),
        qemu: fc.record(
          { machine: pick(["q35", "pc,smm=off"]), args: fc.array(hostileString, { maxLength: 2 }) },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: ["nics"] },
    );
    const topology = fc.record(
      {
        name: pick(["lab", "a-b_c", "x".repeat(63), ...PROTO]),
        networks: fc.dictionary(netName, network, { maxKeys: 3 }),
        vms: fc.dictionary(pick(["vm0", "vm1", "vm2", ...PROTO]), vm, { maxKeys: 3 }),
        netns: pick(["ns1"]),
      },
      { requiredKeys: ["name", "networks", "vms"] },
    );
    const stateDir = pick(["/run/qnet/lab", "/run/a,b/lab", "/tmp/x y,,z/lab"]);
    fc.assert(
      fc.property(topology, fc.boolean(), stateDir, (t, asJson, dir) => {
        counts.structured++;
        exercise(asJson ? JSON.stringify(t) : stringify(t), dir);
      }),
      { numRuns: 2500, seed: SEED },
    );
    // The generator must reach both sides, or it proves little.
    assert.ok(counts.accepted > 100, `only ${counts.accepted} accepted`);
    assert.ok(counts.rejected > 100, `only ${counts.rejected} rejected`);
  });
});

describe("oversized input", () => {
  const timed = (label: string, text: string) => {
    const t0 = performance.now();
    let err: unknown;
    try {
      compileTopology(text, "big.yaml");
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t0;
    counts.oversized++;
    console.log(
      `oversized: ${label}: ${(Buffer.byteLength(text) / 1e6).toFixed(2)} MB refused in ${ms.toFixed(0)} ms`,
    );
    assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${String(err)}`);
    checkRejection(err);
    for (const d of err.diagnostics)
      assert.ok(formatDiagnostic(d).length < 2000, "messages stay short");
    return err.diagnostics;
  };
  test("a 100,000-VM file is refused with a located message", () => {
    const vms = Array.from(
      { length: 100_000 },
      (_, i) => `  vm${i}: { nics: [{ network: lan }] }`,
    ).join("\n");
    const d = timed(
      "100,000 VMs",
      `name: lab\nnetworks:\n  lan: { type: bridge, subnet: 10.0.0.0/8 }\nvms:\n${vms}\n`,
    );
    // 4 MB of YAML: refused by size before any parsing.
    assert.equal(d[0]!.line, 1);
    assert.match(d[0]!.message, /larger than 2 MiB/);
  });
  test("a 12,000-VM file under the size limit is refused by its VM count", () => {
    const vms = Array.from({ length: 12_000 }, (_, i) => `  v${i}: {nics: []}`).join("\n");
    const d = timed("12,000 VMs", `name: lab\nnetworks: {}\nvms:\n${vms}\n`);
    assert.equal(d[0]!.path, "vms");
    assert.match(d[0]!.message, /12000 entries; at most 10000 are accepted/);
  });
  test("a 1 MB lab name, VM name (as a key) and network reference are refused with short messages", () => {
    const big = "a".repeat(1024 * 1024);
    timed("1 MB lab name", `name: ${big}\nnetworks: {}\nvms: {}\n`);
    const d = timed(
      "1 MB VM name",
      JSON.stringify({ name: "lab", networks: {}, vms: { [big]: { nics: [] } } }),
    );
    assert.match(d[0]!.path, /^vms\["a{40}\.\.\.\(1048576 characters\)"\]$/);
    timed(
      "1 MB network reference",
      JSON.stringify({ name: "lab", networks: {}, vms: { vm0: { nics: [{ network: big }] } } }),
    );
    timed("1 MB unknown key", JSON.stringify({ name: "lab", networks: {}, vms: {}, [big]: 1 }));
  });
  test("a file over the size limit, deep nesting and an alias bomb are refused", () => {
    timed("9 MB file", `# ${"x".repeat(9 * 1024 * 1024)}\nname: lab\n`);
    timed("100,000 nested brackets", `${"[".repeat(100_000)}${"]".repeat(100_000)}`);
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++)
      bomb.push(
        `${"abcdefghij"[i]}: &${"abcdefghij"[i]} [${Array(10)
          .fill(`*${"abcdefghij"[i - 1]}`)
          .join(",")}]`,
      );
    timed("alias bomb", `${bomb.join("\n")}\nname: lab\n`);
  });
});
