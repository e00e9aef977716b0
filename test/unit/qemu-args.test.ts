// QEMU arguments: the seed's exact device strings, vhost from facts, and comma escaping of user-controlled text.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { HostFacts, Lab, Vm } from "../../src/model/lab.js";
import { vmRuntime } from "../../src/model/paths.js";
import { networkArgs, qemuNameArg, vmArgv } from "../../src/render/qemu-args.js";
import { qemuOpts, qemuValue } from "../../src/render/qemu-escape.js";
import { REPO_ROOT } from "../helpers/golden.js";
import { parseQemuOpts } from "../helpers/qemu-opts.js";
import { compile, runCli } from "../helpers/topology.js";

const NO: HostFacts = { kvm: false, vhost: false };
const VHOST: HostFacts = { kvm: true, vhost: true };
const example = (name: string) => readFileSync(join(REPO_ROOT, "examples", `${name}.yaml`), "utf8");

const tmp = mkdtempSync(join(tmpdir(), "qnet-args-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("the seed's arguments", () => {
  test("qnet args examples/private-lan.yaml vm0 (the real CLI): a tap, virtio-net-pci, MAC 52:54:00:12:34:56", () => {
    const r = runCli(["args", "examples/private-lan.yaml", "vm0", "--vhost", "off"]);
    assert.equal(r.stderr, "");
    assert.equal(r.status, 0);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2);
    assert.match(
      lines[0]!,
      /^-netdev tap,id=net0,ifname=qntap-[0-9a-f]{8},script=no,downscript=no$/,
    );
    assert.equal(lines[1], "-device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56");
  });
  test("the same file with `model: e1000` gives exactly the seed's device", () => {
    const file = join(tmp, "e1000.yaml");
    writeFileSync(
      file,
      example("private-lan").replace(
        'mac: "52:54:00:12:34:56"',
        'mac: "52:54:00:12:34:56"\n        model: e1000',
      ),
    );
    const r = runCli(["args", file, "vm0"]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines[1], "-device e1000,netdev=net0,mac=52:54:00:12:34:56");
    // The seed's netdev, with a derived tap name in place of tap0; e1000 never gets vhost.
    assert.match(
      lines[0]!,
      /^-netdev tap,id=net0,ifname=qntap-[0-9a-f]{8},script=no,downscript=no$/,
    );
  });
  test("--json and --shell print the same argv", () => {
    const json = JSON.parse(
      runCli(["args", "examples/private-lan.yaml", "vm1", "--json", "--vhost", "on"]).stdout,
    ) as string[];
    assert.equal(json.length, 4);
    assert.match(json[1]!, /,vhost=on$/);
    const shell = runCli([
      "args",
      "examples/private-lan.yaml",
      "vm1",
      "--shell",
      "--vhost",
      "on",
    ]).stdout;
    assert.equal(shell, `${json.join(" ")}\n`);
  });
  test("user networking: hostfwd bound to 127.0.0.1 unless an address is given", () => {
    const { lab } = compile(example("user-forward"));
    assert.deepEqual(networkArgs(lab, lab.vms[0]!, NO), [
      "-netdev",
      "user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15,hostname=vm,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8080-:80",
      "-device",
      `e1000,netdev=net0,mac=${lab.vms[0]!.nics[0]!.mac}`,
    ]);
    const bound = compile(
      example("user-forward").replace('"tcp:2222:22"', '"udp:192.168.1.5:5353:53"'),
    ).lab;
    assert.match(
      networkArgs(bound, bound.vms[0]!, NO)[1]!,
      /,hostfwd=udp:192\.168\.1\.5:5353-:53,/,
    );
  });
  test("vhost=on only when the facts say /dev/vhost-net is usable, and only for virtio-net", () => {
    const { lab } = compile(example("private-lan"));
    const vm0 = lab.vms[0]!;
    assert.ok(!networkArgs(lab, vm0, NO)[1]!.includes("vhost"));
    assert.ok(networkArgs(lab, vm0, VHOST)[1]!.endsWith(",vhost=on"));
    const e1000 = compile(
      example("private-lan").replaceAll("ip: 10.0.2.3,", "ip: 10.0.2.3, model: e1000,"),
    ).lab;
    assert.ok(!networkArgs(e1000, e1000.vms[1]!, VHOST)[1]!.includes("vhost"));
  });
  test("multi-queue virtio-net for a VM with several vCPUs", () => {
    const { lab } = compile(example("private-lan").replace("  vm1:\n", "  vm1:\n    cpus: 4\n"));
    const args = networkArgs(lab, lab.vms[1]!, VHOST);
    assert.match(args[1]!, /,vhost=on,queues=4$/);
    assert.equal(args[3], "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:57,mq=on,vectors=10");
  });
});

describe("QEMU option escaping", () => {
  test("qemuValue doubles every comma and nothing else", () => {
    assert.equal(qemuValue("a,b,,c"), "a,,b,,,,c");
    assert.equal(qemuValue("no comma = fine"), "no comma = fine");
    assert.equal(qemuValue(42), "42");
  });
  test("qemuOpts escapes values, drops undefined ones, keeps empty ones", () => {
    assert.equal(
      qemuOpts("socket", [
        ["id", "x"],
        ["path", "/a,b"],
        ["gone", undefined],
        ["empty", ""],
      ]),
      "socket,id=x,path=/a,,b,empty=",
    );
    assert.deepEqual(parseQemuOpts("socket,id=x,path=/a,,b,empty="), {
      head: "socket",
      pairs: [
        ["id", "x"],
        ["path", "/a,b"],
        ["empty", ""],
      ],
    });
  });

  /** A lab whose VM boots `guest` from paths with commas, under a state dir with commas. */
  function hostile(guest: string): { lab: Lab; vm: Vm; argv: string[]; stateDir: string } {
    const { lab } = compile(
      `name: lab\nnetworks:\n  n: { type: bridge, subnet: 10.0.2.0/24 }\n  u: { type: user, forwards: ["tcp:2222:22"] }\nvms:\n  vm0:\n    ${guest}\n    nics: [{ network: n }, { network: u }]\n`,
    );
    const stateDir = "/run/a,b/state,,dir/lab";
    const vm = lab.vms[0]!;
    const argv = vmArgv(
      lab,
      vm,
      NO,
      vmRuntime(stateDir, vm, { kernel: "/k,1", initrd: "/i,1", append: "x=1,2" }),
    );
    return { lab, vm, argv, stateDir };
  }
  const optionOf = (argv: string[], flag: string, head: string) =>
    argv.filter((a, i) => argv[i - 1] === flag && a.startsWith(head)).map(parseQemuOpts);
  const value = (o: { pairs: [string, string][] }, key: string) =>
    o.pairs.find(([k]) => k === key)?.[1];

  test("a disk path with commas is doubled in -drive file=, and reads back whole", () => {
    const { argv, stateDir } = hostile('disk: "/img/my,disk=1.qcow2"');
    const drives = optionOf(argv, "-drive", "if=virtio");
    assert.equal(drives.length, 2);
    assert.ok(argv.includes("if=virtio,file=/img/my,,disk=1.qcow2,cache=unsafe"));
    assert.deepEqual(drives[0]!.pairs, [
      ["file", "/img/my,disk=1.qcow2"],
      ["cache", "unsafe"],
    ]);
    assert.deepEqual(drives[1]!.pairs, [
      ["file", `${stateDir}/vm/vm0.seed.img`],
      ["format", "raw"],
      ["readonly", "on"],
    ]);
  });
  test("state dir paths with commas are doubled in every -chardev path and logfile", () => {
    const { argv, stateDir } = hostile('kernel: "/boot/vmlinuz,x"');
    const chardevs = optionOf(argv, "-chardev", "socket");
    assert.deepEqual(
      chardevs.map((c) => [value(c, "id"), value(c, "path"), value(c, "logfile")]),
      [
        ["qmp", `${stateDir}/vm/vm0.qmp`, undefined],
        ["serial0", `${stateDir}/vm/vm0.serial`, `${stateDir}/vm/vm0.console.log`],
        ["qga0", `${stateDir}/vm/vm0.qga`, undefined],
      ],
    );
    for (const c of chardevs) assert.deepEqual(c.pairs.map(([k]) => k).slice(0, 2), ["id", "path"]);
  });
  test("options QEMU takes whole (-kernel, -initrd, -append, -pidfile) are passed as given, not doubled", () => {
    // Checked against qemu-system-x86_64 7.2: `-kernel /x/a,b` opens '/x/a,b'; `-drive file=/x/a,,b` opens '/x/a,b'.
    const { argv, stateDir } = hostile(
      'kernel: "/boot/vmlinuz,x"\n    initrd: "/boot/initrd,y"\n    append: "console=ttyS0,115200 quiet"',
    );
    const after = (flag: string) => argv[argv.indexOf(flag) + 1];
    assert.equal(after("-kernel"), "/boot/vmlinuz,x");
    assert.equal(after("-initrd"), "/boot/initrd,y");
    assert.equal(after("-append"), "console=ttyS0,115200 quiet");
    assert.equal(after("-pidfile"), `${stateDir}/vm/vm0.pid`);
  });
  test("every netdev and device option reads back to the intended pairs", () => {
    const { lab, vm, argv } = hostile("");
    const netdevs = optionOf(argv, "-netdev", "");
    assert.deepEqual(
      netdevs.map((n) => n.head),
      ["tap", "user"],
    );
    assert.deepEqual(netdevs[0]!.pairs, [
      ["id", "net0"],
      ["ifname", vm.nics[0]!.tap!],
      ["script", "no"],
      ["downscript", "no"],
    ]);
    assert.deepEqual(value(netdevs[1]!, "hostfwd"), "tcp:127.0.0.1:2222-:22");
    const devices = optionOf(argv, "-device", "virtio-net-pci");
    assert.deepEqual(
      devices.map((d) => d.pairs),
      vm.nics.map((n) => [
        ["netdev", n.netdevId],
        ["mac", n.mac],
      ]),
    );
    assert.deepEqual(
      networkArgs(lab, vm, NO),
      argv.slice(argv.indexOf("-netdev"), argv.indexOf("-netdev") + 8),
    );
  });
  test("the -name option reads back to guest=<lab>:<vm> and process=qnet:<lab>:<vm>", () => {
    const { argv } = hostile("");
    const name = parseQemuOpts(argv[argv.indexOf("-name") + 1]!);
    assert.deepEqual(name, { head: "guest=lab:vm0", pairs: [["process", "qnet:lab:vm0"]] });
  });
  test("the -name of lab a's VM b-c differs from lab a-b's VM c (one argv element names one VM)", () => {
    assert.notEqual(qemuNameArg("a", "b-c"), qemuNameArg("a-b", "c"));
  });
  test("the full argv is deterministic for the same inputs", () => {
    assert.deepEqual(hostile("").argv, hostile("").argv);
  });
});
