// Unit tests for doctor's pure parts: firewall, ss, route, bridge.conf, QEMU help and nmcli parsers, table rendering.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSysctlConf, sysctlFileText, udevRuleText } from "../../src/doctor/bridge-filter.js";
import { aclAllows, parseBridgeConf } from "../../src/doctor/bridge-helper.js";
import { DEFAULT_ENV, exitCodeFor, renderDoctorTable, runDoctor } from "../../src/doctor/index.js";
import { parseNetdevHelp, parseNicModels } from "../../src/doctor/qemu.js";
import { parseRoutes } from "../../src/doctor/routes.js";
import type { DoctorReport } from "../../src/doctor/types.js";
import { checkUplinks, parseNetworkdState } from "../../src/doctor/uplink.js";
import {
  forwardDrops,
  ownersOf,
  parseIptablesSave,
  parseNftRuleset,
} from "../../src/facts/firewall.js";
import { collides, parseSs } from "../../src/facts/ss.js";
import { RecordingRunner } from "../../src/host/runner.js";
import { compileTopology } from "../../src/load/compile.js";

describe("firewall parsers", () => {
  it("reads the FORWARD policy, chains and catch-all drops from iptables-save", () => {
    const save = (lines: string[]) =>
      parseIptablesSave(["*filter", ...lines, "COMMIT"].join("\n"), "nft")!;
    const f = save([
      ":INPUT ACCEPT [0:0]",
      ":FORWARD DROP [0:0]",
      ":DOCKER - [0:0]",
      ":DOCKER-USER - [0:0]",
      "-A FORWARD -j DOCKER-USER",
    ]);
    assert.equal(f.forwardPolicy, "DROP");
    assert.deepEqual(f.chains, ["INPUT", "FORWARD", "DOCKER", "DOCKER-USER"]);
    assert.equal(f.forwardCatchAllDrop, false);
    assert.deepEqual(ownersOf(f.chains), ["Docker"]);
    const g = save([
      ":FORWARD ACCEPT [0:0]",
      "-A FORWARD -i br0 -j DROP",
      "-A FORWARD -j REJECT --reject-with icmp-host-prohibited",
    ]);
    assert.equal(g.forwardPolicy, "ACCEPT");
    assert.equal(g.forwardCatchAllDrop, true);
    assert.equal(
      save([":FORWARD ACCEPT [0:0]", "-A FORWARD -i br0 -j DROP"]).forwardCatchAllDrop,
      false,
    );
  });

  it("finds forward-hook base chains in nft JSON and names firewalld and ufw", () => {
    const j = JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6" } },
        { table: { family: "inet", name: "firewalld", handle: 1 } },
        {
          chain: {
            family: "inet",
            table: "firewalld",
            name: "filter_FORWARD",
            handle: 2,
            type: "filter",
            hook: "forward",
            prio: 10,
            policy: "drop",
          },
        },
        { chain: { family: "inet", table: "firewalld", name: "filter_FWD_public", handle: 3 } },
        { chain: { family: "ip", table: "filter", name: "ufw-before-forward", handle: 4 } },
      ],
    });
    const f = parseNftRuleset(j);
    const drops = forwardDrops({ iptables: [], nft: f });
    assert.deepEqual(
      drops.map((d) => d.target),
      [{ type: "nft", family: "inet", table: "firewalld", chain: "filter_FORWARD" }],
    );
    assert.deepEqual(drops[0]!.owners, ["firewalld"]);
    assert.deepEqual(ownersOf([], ["firewalld"]), ["firewalld"]);
    assert.deepEqual(ownersOf(f.chains.map((c) => c.name)), ["firewalld", "ufw"]);
  });
});

describe("ss parser", () => {
  const tcp = [
    'LISTEN 0 511 127.0.0.1:2222 0.0.0.0:* users:(("node",pid=4242,fd=19))',
    'LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=10,fd=4),("sshd",pid=11,fd=4))',
    "LISTEN 0 32 10.0.2.1%br0:53 0.0.0.0:*",
  ].join("\n");
  const ls = parseSs(tcp, "tcp");
  it("splits address, interface, port and processes", () => {
    assert.deepEqual(ls[0], {
      proto: "tcp",
      addr: "127.0.0.1",
      port: 2222,
      iface: null,
      procs: [{ name: "node", pid: 4242 }],
    });
    assert.deepEqual(
      ls[1]!.procs.map((p) => p.pid),
      [10, 11],
    );
    assert.equal(ls[1]!.addr, "::");
    assert.deepEqual([ls[2]!.addr, ls[2]!.iface, ls[2]!.port], ["10.0.2.1", "br0", 53]);
  });
  it("decides collisions by proto, port, address and interface", () => {
    assert.equal(collides(ls[0]!, "tcp", "127.0.0.1", 2222), true);
    assert.equal(collides(ls[0]!, "udp", "127.0.0.1", 2222), false);
    assert.equal(collides(ls[0]!, "tcp", "10.0.0.1", 2222), false);
    assert.equal(collides(ls[0]!, "tcp", "0.0.0.0", 2222), true);
    assert.equal(collides(ls[1]!, "tcp", "127.0.0.1", 22), true, "[::] also takes IPv4");
    assert.equal(
      collides(ls[2]!, "tcp", "10.0.2.1", 53, "br1"),
      false,
      "bound to another interface",
    );
    assert.equal(collides(ls[2]!, "tcp", "10.0.2.1", 53, "br0"), true);
  });
});

describe("route, bridge.conf, QEMU, nmcli, networkd and sysctl parsers", () => {
  it("parses ip -json route, skipping default", () => {
    const r = parseRoutes(
      JSON.stringify([
        { dst: "default", dev: "eth0" },
        { dst: "10.10.0.0/24", dev: "d0" },
        { dst: "192.0.2.7", dev: "eth0" },
      ]),
    );
    assert.deepEqual(
      r.map((x) => [x.dst, x.dev, x.subnet.prefix]),
      [
        ["10.10.0.0/24", "d0", 24],
        ["192.0.2.7", "eth0", 32],
      ],
    );
  });

  it("applies the helper's ACL rules: deny wins, all matches everything", () => {
    const acl = (text: string) => ({
      rules: parseBridgeConf(text).flatMap((r) =>
        r.type === "include" ? [] : [{ ...r, file: "x" }],
      ),
      unreadable: [],
    });
    assert.equal(aclAllows(acl("allow br0\n"), "br0"), true);
    assert.equal(aclAllows(acl("allow br1 # other\n"), "br0"), false);
    assert.equal(aclAllows(acl("allow all\ndeny br0\n"), "br0"), false);
    assert.equal(aclAllows(acl("allow all\n"), "qnbr-x"), true);
    assert.deepEqual(parseBridgeConf("include /etc/qemu/more.conf\n"), [
      { type: "include", path: "/etc/qemu/more.conf" },
    ]);
  });

  it("parses QEMU's -netdev help and the network section of -device help", () => {
    assert.deepEqual(parseNetdevHelp("Available netdev backend types:\nsocket\ntap\nuser\n"), [
      "socket",
      "tap",
      "user",
    ]);
    const dev =
      'Storage devices:\nname "virtio-blk-pci", bus PCI\n\nNetwork devices:\nname "e1000", bus PCI, alias "e1000-82540em", desc "Intel"\nname "virtio-net-pci", bus PCI, alias "virtio-net"\n\nUSB devices:\nname "usb-kbd"\n';
    assert.deepEqual(parseNicModels(dev), [
      "e1000",
      "e1000-82540em",
      "virtio-net-pci",
      "virtio-net",
    ]);
  });

  it("parses networkd state and sysctl.conf", () => {
    assert.equal(
      parseNetworkdState("# This is private data.\nADMIN_STATE=configured\nOPER_STATE=routable\n"),
      "configured",
    );
    const m = parseSysctlConf(sysctlFileText());
    assert.equal(m.get("net.bridge.bridge-nf-call-iptables"), "0");
    assert.equal(m.size, 3);
    assert.equal(
      parseSysctlConf(" net/ipv4/ip_forward = 1 \n#x=2\n").get("net.ipv4.ip_forward"),
      "1",
    );
    assert.equal(
      udevRuleText("/sbin/sysctl", "/etc/sysctl.d/bridge-filter.conf"),
      'ACTION=="add", SUBSYSTEM=="module", KERNEL=="br_netfilter", RUN+="/sbin/sysctl -p /etc/sysctl.d/bridge-filter.conf"\n',
    );
  });
});

describe("uplink check (recorded runner)", () => {
  const lab = compileTopology(
    "name: o\nnetworks:\n  lan: { type: bridged, uplink: eth0, bridge: br0 }\nvms:\n  vm0: { nics: [{ network: lan }] }\n",
    "t.yaml",
  ).lab;
  it("passes for a wired uplink systemd-networkd does not claim (NetworkManager has its own checks)", async () => {
    const runner = new RecordingRunner(null, (argv) => ({
      exitCode: argv[0] === "test" && argv[2]!.endsWith("/eth0") ? 0 : 1,
    }));
    const [r] = await checkUplinks({
      lab,
      runner,
      fix: false,
      confirm: async () => false,
      env: DEFAULT_ENV,
    });
    assert.equal(r!.status, "pass");
    assert.match(r!.detail, /systemd-networkd does not claim it/);
  });
});

describe("renderDoctorTable and exitCodeFor", () => {
  const report: DoctorReport = {
    checks: [
      { id: "a", title: "first check", status: "pass", detail: "All good." },
      {
        id: "b",
        title: "second",
        status: "fail",
        detail: "word ".repeat(40).trim(),
        fix: "do this",
      },
      {
        id: "c",
        title: "third",
        status: "warn",
        detail: "Hmm.",
        fix: "maybe",
        fixed: "wrote /tmp/x",
      },
      { id: "d", title: "fourth", status: "skip", detail: "Not relevant.", fix: "never shown" },
    ],
  };
  it("renders one row per check, wrapped, with fix and fixed lines under problems only", () => {
    const t = renderDoctorTable(report, 60);
    const lines = t.trimEnd().split("\n");
    assert.match(lines[0]!, /^STATUS\s+CHECK\s+DETAIL$/);
    assert.match(lines[1]!, /^ok\s+first check\s+All good\.$/);
    assert.match(lines[2]!, /^FAIL\s+second\s+word word/);
    assert.ok(
      lines.every((l) => l.length <= 60),
      "wrapped to the width",
    );
    assert.ok(t.includes("fix: do this"));
    assert.ok(t.includes("fixed: wrote /tmp/x"));
    assert.ok(!t.includes("never shown"), "no fix line for a skipped check");
    assert.match(lines.at(-1)!, /^1 ok, 1 warning\(s\), 1 failure\(s\), 1 skipped$/);
  });
  it("exits non-zero only when something failed", () => {
    assert.equal(exitCodeFor(report), 1);
    assert.equal(exitCodeFor({ checks: report.checks.filter((c) => c.status !== "fail") }), 0);
    assert.equal(exitCodeFor({ checks: [] }), 0);
  });
  it("runDoctor still reports every check when no command can run", async () => {
    // A runner that throws on every call: each check must still produce a row, never throw.
    const runner = {
      netns: null,
      run: async () => {
        throw new Error("boom");
      },
    };
    const r = await runDoctor({
      runner,
      env: {
        devRoot: "/nonexistent-qnt",
        procRoot: "/nonexistent-qnt",
        sysRoot: "/nonexistent-qnt",
        sysctlDir: "/nonexistent-qnt/s",
        udevRulesDir: "/nonexistent-qnt/u",
      },
    });
    assert.ok(r.checks.length >= 10);
    assert.ok(r.checks.every((c) => c.detail.length > 0));
  });
});
