// qnet check's pure parts: which pairs a lab gets, ping/proc parsing, causes, the table.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { CheckResult } from "../../src/doctor/types.js";
import { explainFailures, isLocalRefusal } from "../../src/lab/check-causes.js";
import {
  listensOn,
  type PairResult,
  parsePingLatency,
  pingFailure,
  planPairs,
} from "../../src/lab/check-pairs.js";
import { renderCheckTable, summarize } from "../../src/lab/check-render.js";
import type { LiveLab } from "../../src/lab/live.js";
import type { StatusObject } from "../../src/lab/status.js";
import type { Lab } from "../../src/model/lab.js";
import { REPO_ROOT } from "../helpers/golden.js";
import { compile } from "../helpers/topology.js";

const example = (name: string): Lab =>
  compile(readFileSync(join(REPO_ROOT, "examples", `${name}.yaml`), "utf8")).lab;

/** Every VM running with its planned addresses. */
function allUp(lab: Lab): LiveLab {
  return {
    vms: lab.vms.map((vm) => ({
      name: vm.name,
      state: "running" as const,
      pid: 1,
      detail: "QEMU running",
      agentError: null,
      nics: vm.nics.map((n) => ({
        nic: n.index,
        network: n.network,
        mac: n.mac,
        ifname: `eth${n.index}`,
        ipv4: n.ip ? [`${n.ip}/${n.prefix}`] : [],
      })),
    })),
  };
}

describe("planPairs", () => {
  test("private-lan: both directions between the VMs, each VM to the gateway, the host to each VM", () => {
    const lab = example("private-lan");
    const pairs = planPairs(lab, allUp(lab));
    assert.deepEqual(
      pairs.map((p) => [p.id, p.address, p.source]),
      [
        ["vm0>vm1@lan", "10.0.2.3", "10.0.2.2"],
        ["vm1>vm0@lan", "10.0.2.2", "10.0.2.3"],
        ["vm0>gateway@lan", "10.0.2.1", "10.0.2.2"],
        ["vm1>gateway@lan", "10.0.2.1", "10.0.2.3"],
        ["host>vm0@lan", "10.0.2.2", "10.0.2.1"],
        ["host>vm1@lan", "10.0.2.3", "10.0.2.1"],
      ],
    );
    assert.ok(pairs.every((p) => p.blocked === null));
  });

  test("services: a forward to its VM, and NAT pairs only when a target is named", () => {
    const lab = example("services");
    const without = planPairs(lab, allUp(lab));
    assert.ok(!without.some((p) => p.kind === "nat"));
    const pairs = planPairs(lab, allUp(lab), { target: "192.0.2.9" });
    const fwd = pairs.filter((p) => p.kind === "forward");
    assert.equal(fwd.length, 1);
    assert.equal(fwd[0]!.address, "127.0.0.1");
    assert.equal(fwd[0]!.port, 8022);
    assert.equal(fwd[0]!.forward?.targetVm, "vm0");
    assert.equal(fwd[0]!.forward?.guestPort, 22);
    assert.deepEqual(fwd[0]!.ends, [{ vm: "vm0", network: "lan" }]);
    assert.deepEqual(
      pairs.filter((p) => p.kind === "nat").map((p) => [p.id, p.address]),
      [
        ["vm0>nat:192.0.2.9", "192.0.2.9"],
        ["vm1>nat:192.0.2.9", "192.0.2.9"],
      ],
    );
  });

  test("user network: no VM-to-VM or host-to-VM pairs, the QEMU gateway, each forward", () => {
    const lab = example("user-forward");
    const pairs = planPairs(lab, allUp(lab));
    assert.deepEqual(
      pairs.map((p) => [p.kind, p.address, p.port]),
      [
        ["vm-gateway", "10.0.2.2", null],
        ["forward", "127.0.0.1", 2222],
        ["forward", "127.0.0.1", 8080],
      ],
    );
  });

  test("bridged network: addresses come from the agent; a VM without one is blocked, not guessed", () => {
    const lab = example("lan-bridge");
    const live = allUp(lab);
    live.vms[0]!.nics![0]!.ipv4 = ["192.168.1.50/24"];
    live.vms[1]!.nics![0]!.ipv4 = [];
    const pairs = planPairs(lab, live);
    const p01 = pairs.find((p) => p.id === "vm0>vm1@lan")!;
    const p10 = pairs.find((p) => p.id === "vm1>vm0@lan")!;
    assert.equal(p10.address, "192.168.1.50");
    assert.match(p01.blocked ?? "", /vm1 holds no IPv4 address on lan/);
    assert.match(p10.blocked ?? "", /vm1 holds no IPv4 address/);
    assert.ok(!pairs.some((p) => p.kind === "vm-gateway"), "the LAN's router is not probed");
    assert.equal(pairs.find((p) => p.id === "host>vm0@lan")?.address, "192.168.1.50");
  });
});

describe("parsing", () => {
  test("latency from busybox and iputils ping", () => {
    assert.equal(parsePingLatency("64 bytes from 10.0.2.3: seq=0 ttl=64 time=0.517 ms\n"), 0.517);
    assert.equal(
      parsePingLatency("64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.021 ms\n"),
      0.021,
    );
    assert.equal(parsePingLatency("1 packets transmitted, 0 packets received"), null);
  });

  test("a ping's own error wins over 'no reply'", () => {
    assert.equal(
      pingFailure("PING x\n", "ping: sendto: Permission denied\n", 2),
      "ping: sendto: Permission denied",
    );
    assert.equal(
      pingFailure("1 packets transmitted, 0 packets received, 100% packet loss", "", 2),
      "no reply within 2 s",
    );
    assert.ok(isLocalRefusal("ping: sendto: Permission denied"));
    assert.ok(isLocalRefusal("ping: connect: Network is unreachable"));
    assert.ok(!isLocalRefusal("no reply within 2 s"));
  });

  test("listeners from /proc/net/tcp (state 0A only, the local port only)", () => {
    const tcp = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1",
      "   1: 0F02000A:0050 0202000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 2",
    ].join("\n");
    assert.equal(listensOn(tcp, 22), true);
    assert.equal(listensOn(tcp, 80), false, "an established connection is not a listener");
    assert.equal(listensOn(tcp, 50000), false, "a remote port is not a listener");
  });
});

function results(lab: Lab, live: LiveLab, failed: Record<string, string>): PairResult[] {
  return planPairs(lab, live).map((p) => ({
    ...p,
    status: p.id in failed ? "fail" : "pass",
    latencyMs: p.id in failed ? null : 0.5,
    detail: failed[p.id] ?? "reply",
    cause: null,
  }));
}

const present = (kind: StatusObject["kind"], name: string): StatusObject => ({
  kind,
  name,
  state: "present",
  detail: "",
});

describe("explainFailures", () => {
  const lab = example("private-lan");
  const tap1 = lab.vms[1]!.nics[0]!.tap!;
  const tap0 = lab.vms[0]!.nics[0]!.tap!;
  const healthy: StatusObject[] = [
    present("bridge", "br0"),
    present("address", "10.0.2.1/24 on br0"),
    present("tap", tap0),
    present("tap", tap1),
  ];

  test("a deleted tap explains every pair through that NIC, and passes are left alone", () => {
    const status = healthy.map((o) =>
      o.name === tap1
        ? { ...o, state: "drifted" as const, detail: "deleted since qnet made it (vm1 nic 0)" }
        : o,
    );
    const fails = ["vm0>vm1@lan", "vm1>vm0@lan", "vm1>gateway@lan", "host>vm1@lan"];
    const r = explainFailures(
      results(lab, allUp(lab), Object.fromEntries(fails.map((f) => [f, "no reply within 2 s"]))),
      { lab, live: allUp(lab), status, doctor: [] },
    );
    for (const p of r) {
      if (fails.includes(p.id)) {
        assert.match(p.cause ?? "", new RegExp(`tap ${tap1} of vm1's NIC 0 on lan is drifted`));
        assert.match(p.cause ?? "", /deleted since qnet made it\)/);
      } else assert.equal(p.cause, null);
    }
  });

  test("a refusal inside one guest explains both directions", () => {
    const r = explainFailures(
      results(lab, allUp(lab), {
        "vm0>vm1@lan": "ping: sendto: Permission denied",
        "vm1>vm0@lan": "no reply within 2 s",
      }),
      { lab, live: allUp(lab), status: healthy, doctor: [] },
    );
    assert.match(r[0]!.cause ?? "", /vm0 refuses to send to 10\.0\.2\.3 itself/);
    assert.match(r[1]!.cause ?? "", /vm0 cannot send its replies to 10\.0\.2\.3/);
  });

  test("a stopped VM, a lost address, and otherwise what was tried", () => {
    const live = allUp(lab);
    live.vms[1] = { ...live.vms[1]!, state: "stopped", detail: "no QEMU process", nics: null };
    const r1 = explainFailures(results(lab, live, { "host>vm1@lan": "no reply within 2 s" }), {
      lab,
      live,
      status: healthy,
      doctor: [],
    });
    assert.match(r1.find((p) => p.id === "host>vm1@lan")!.cause ?? "", /VM vm1 is stopped/);

    const lost = allUp(lab);
    lost.vms[0]!.nics![0]!.ipv4 = [];
    const r2 = explainFailures(results(lab, lost, { "host>vm0@lan": "no reply within 2 s" }), {
      lab,
      live: lost,
      status: healthy,
      doctor: [],
    });
    assert.match(
      r2.find((p) => p.id === "host>vm0@lan")!.cause ?? "",
      /vm0 does not hold its address 10\.0\.2\.2 on lan \(its interface eth0 holds no IPv4 address\)/,
    );

    const r3 = explainFailures(
      results(lab, allUp(lab), { "host>vm0@lan": "no reply within 2 s" }),
      {
        lab,
        live: allUp(lab),
        status: healthy,
        doctor: [],
      },
    );
    assert.match(
      r3.find((p) => p.id === "host>vm0@lan")!.cause ?? "",
      /tried `ping -c1` of 10\.0\.2\.2/,
    );
  });

  test("NAT failures take doctor's FORWARD drop; VM-to-VM ones its bridge-nf-call failure", () => {
    const svc = example("services");
    const live = allUp(svc);
    const doctor: CheckResult[] = [
      {
        id: "forward-policy",
        title: "FORWARD drop policy",
        status: "fail",
        detail: "drop in inet x.",
        fix: "nft insert rule ...",
      },
      { id: "bridge-nf-call", title: "bridge-nf-call-* sysctls", status: "fail", detail: "on." },
      { id: "dev.kvm", title: "/dev/kvm", status: "fail", detail: "unrelated." },
    ];
    const pairs = planPairs(svc, live, { target: "192.0.2.9" }).map(
      (p): PairResult => ({
        ...p,
        status: p.kind === "nat" || p.kind === "vm-vm" ? "fail" : "pass",
        latencyMs: null,
        detail: "no reply within 2 s",
        cause: null,
      }),
    );
    const r = explainFailures(pairs, {
      lab: svc,
      live,
      status: [present("nft-table", "ip qnet-svc")],
      doctor,
    });
    for (const p of r.filter((x) => x.kind === "nat"))
      assert.match(p.cause ?? "", /^FORWARD drop policy: drop in inet x\. Fix: nft insert rule/);
    for (const p of r.filter((x) => x.kind === "vm-vm"))
      assert.match(p.cause ?? "", /^bridge-nf-call-\* sysctls: on\./);
    const gone = explainFailures(pairs, {
      lab: svc,
      live,
      status: [{ kind: "nft-table", name: "ip qnet-svc", state: "missing", detail: "table gone" }],
      doctor,
    });
    for (const p of gone.filter((x) => x.kind === "nat"))
      assert.match(p.cause ?? "", /nftables table ip qnet-svc is missing/);
  });
});

describe("renderCheckTable", () => {
  test("a row per pair, failures followed by what happened and the cause", () => {
    const lab = example("private-lan");
    const pairs = results(lab, allUp(lab), { "vm0>vm1@lan": "no reply within 2 s" }).map((p) =>
      p.status === "fail" ? { ...p, cause: "tap X is drifted" } : p,
    );
    const summary = summarize(pairs);
    assert.deepEqual(summary, { pass: 5, fail: 1, warn: 0, skip: 0 });
    const text = renderCheckTable({
      lab: "lab",
      netns: "ns1",
      ok: false,
      summary,
      pairs,
      doctor: [],
    });
    const lines = text.split("\n");
    assert.equal(lines[0], "lab lab (netns ns1): 6 pairs, 5 pass, 1 fail");
    assert.match(lines[2]!, /^vm0\s+vm1 10\.0\.2\.3\s+lan\s+FAIL$/);
    assert.equal(lines[3], "    ✗ no reply within 2 s");
    assert.equal(lines[4], "      cause: tap X is drifted");
    assert.match(lines[5]!, /^vm1\s+vm0 10\.0\.2\.2\s+lan\s+PASS\s+0\.50 ms$/);
  });
});
