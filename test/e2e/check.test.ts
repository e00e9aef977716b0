// `qnet check` and `qnet diagram LAB` on real guests: a healthy lab passes, a broken tap, a rule in a
// guest, a FORWARD drop and a stopped VM each show up as exactly the pairs they break, with the cause.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { CheckReport } from "../../src/lab/check.js";
import type { Lab } from "../../src/model/lab.js";
import { REPO_ROOT } from "../helpers/golden.js";
import { addNetns, delNetns, qnetEnv, sh } from "./helpers/netns.js";

const example = (name: string) => join(REPO_ROOT, "examples", `${name}.yaml`);

function checkJson(env: ReturnType<typeof qnetEnv>, lab: string, ...extra: string[]) {
  const r = env.qnet(["check", lab, "--json", ...extra]);
  assert.ok(r.stdout.trim().startsWith("{"), `check printed no JSON:\n${r.stdout}\n${r.stderr}`);
  return { status: r.status, report: JSON.parse(r.stdout) as CheckReport };
}

const failedIds = (r: CheckReport) =>
  r.pairs
    .filter((p) => p.status === "fail")
    .map((p) => p.id)
    .sort();

const labOf = (stateRoot: string, lab: string): Lab =>
  (JSON.parse(readFileSync(join(stateRoot, lab, "lab.json"), "utf8")) as { lab: Lab }).lab;

describe("qnet check and live diagram: private-lan", () => {
  const ns = `qnt-check-${process.pid}`;
  const env = qnetEnv();

  before(() => {
    addNetns(ns);
    const r = env.qnet(["up", example("private-lan"), "--netns", ns, "-q"]);
    assert.equal(r.status, 0, `up failed:\n${r.stderr}`);
  });
  after(() => {
    env.qnet(["down", "lab"]);
    delNetns(ns);
    env.cleanup();
  });

  test("a healthy lab passes every pair, with latencies, exit 0", () => {
    const { status, report } = checkJson(env, "lab");
    assert.equal(status, 0, JSON.stringify(report, null, 2));
    assert.equal(report.ok, true);
    assert.equal(report.lab, "lab");
    assert.equal(report.netns, ns);
    assert.deepEqual(report.summary, { pass: 6, fail: 0, warn: 0, skip: 0 });
    assert.deepEqual(
      report.pairs.map((p) => [p.id, p.kind, p.from, p.to, p.network, p.address, p.status]),
      [
        ["vm0>vm1@lan", "vm-vm", "vm0", "vm1", "lan", "10.0.2.3", "pass"],
        ["vm1>vm0@lan", "vm-vm", "vm1", "vm0", "lan", "10.0.2.2", "pass"],
        ["vm0>gateway@lan", "vm-gateway", "vm0", "gateway", "lan", "10.0.2.1", "pass"],
        ["vm1>gateway@lan", "vm-gateway", "vm1", "gateway", "lan", "10.0.2.1", "pass"],
        ["host>vm0@lan", "host-vm", "host", "vm0", "lan", "10.0.2.2", "pass"],
        ["host>vm1@lan", "host-vm", "host", "vm1", "lan", "10.0.2.3", "pass"],
      ],
    );
    for (const p of report.pairs) {
      assert.equal(typeof p.latencyMs, "number");
      assert.ok(p.latencyMs! > 0, `${p.id} latency ${p.latencyMs}`);
      assert.equal(p.cause, null);
    }
    assert.deepEqual(report.doctor, []);
    // The table for people says the same.
    const t = env.qnet(["check", "lab"]);
    assert.equal(t.status, 0);
    assert.match(t.stdout, /^lab lab \(netns qnt-check-\d+\): 6 pairs, 6 pass, 0 fail\n/);
    assert.equal((t.stdout.match(/ PASS /g) ?? []).length, 6);
  });

  test("diagram LAB shows each VM up with the address it holds", () => {
    const r = env.qnet(["diagram", "lab"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`network namespace ${ns}`));
    assert.match(r.stdout, /vm0 {2}10\.0\.2\.2 .*\[up 10\.0\.2\.2\/24\]/);
    assert.match(r.stdout, /vm1 {2}10\.0\.2\.3 .*\[up 10\.0\.2\.3\/24\]/);
    const m = env.qnet(["diagram", "lab", "--format", "mermaid"]);
    assert.match(m.stdout, /vm0\["vm0 \[up 10\.0\.2\.2\/24\]"\]/);
  });

  test("a prohibit route inside vm0 breaks exactly vm0 → vm1 and vm1 → vm0", () => {
    const add = env.qnet([
      "exec",
      "lab",
      "vm0",
      "--",
      "ip",
      "route",
      "add",
      "prohibit",
      "10.0.2.3/32",
    ]);
    assert.equal(add.status, 0, add.stderr);
    try {
      const { status, report } = checkJson(env, "lab");
      assert.equal(status, 1);
      assert.equal(report.ok, false);
      assert.deepEqual(failedIds(report), ["vm0>vm1@lan", "vm1>vm0@lan"]);
      const byId = new Map(report.pairs.map((p) => [p.id, p]));
      assert.match(byId.get("vm0>vm1@lan")!.detail, /Permission denied/);
      assert.match(byId.get("vm0>vm1@lan")!.cause!, /vm0 refuses to send to 10\.0\.2\.3 itself/);
      assert.match(byId.get("vm1>vm0@lan")!.cause!, /vm0 cannot send its replies to 10\.0\.2\.3/);
    } finally {
      const del = env.qnet([
        "exec",
        "lab",
        "vm0",
        "--",
        "ip",
        "route",
        "del",
        "prohibit",
        "10.0.2.3/32",
      ]);
      assert.equal(del.status, 0, del.stderr);
    }
    assert.equal(checkJson(env, "lab").status, 0, "the lab passes again once the route is gone");
  });

  test("a tap deleted by hand: exactly the pairs through vm1's NIC fail, the drift is the cause", () => {
    const tap = labOf(env.stateRoot, "lab").vms.find((v) => v.name === "vm1")!.nics[0]!.tap!;
    sh(["ip", "-n", ns, "link", "del", tap]);
    const { status, report } = checkJson(env, "lab");
    assert.equal(status, 1);
    assert.deepEqual(failedIds(report), [
      "host>vm1@lan",
      "vm0>vm1@lan",
      "vm1>gateway@lan",
      "vm1>vm0@lan",
    ]);
    for (const p of report.pairs.filter((x) => x.status === "fail")) {
      assert.match(
        p.cause!,
        new RegExp(`tap ${tap} of vm1's NIC 0 on lan is missing \\(absent\\)`),
      );
      assert.match(p.cause!, /`qnet up` repairs it/);
    }
    const t = env.qnet(["check", "lab"]);
    assert.equal(t.status, 1);
    assert.equal((t.stdout.match(/ FAIL\n/g) ?? []).length, 4);
    assert.equal((t.stdout.match(/ {6}cause: tap /g) ?? []).length, 4);
  });

  test("diagram LAB shows a VM whose QEMU was killed as down", () => {
    const pid = Number(readFileSync(join(env.stateRoot, "lab", "vm", "vm1.pid"), "utf8").trim());
    assert.ok(pid > 1);
    process.kill(pid, "SIGKILL");
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(pid, 0);
        sh(["sleep", "0.1"]);
      } catch {
        break;
      }
    }
    const r = env.qnet(["diagram", "lab"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /vm0 .*\[up 10\.0\.2\.2\/24\]/);
    assert.match(r.stdout, /vm1 .*\[down\]/);
    const { report } = checkJson(env, "lab");
    const vm1From = report.pairs.find((p) => p.id === "vm1>gateway@lan")!;
    assert.equal(vm1From.status, "fail");
    assert.match(vm1From.detail, /not tried: vm1 is not running/);
    assert.match(vm1From.cause!, /VM vm1 is stopped/);
  });
});

describe("qnet check: NAT to a named target and a DNAT forward (services)", () => {
  const ns = `qnt-check-svc-${process.pid}`;
  const outside = `qnt-check-out-${process.pid}`;
  const env = qnetEnv();

  before(() => {
    addNetns(ns);
    addNetns(outside);
    // An "outside" host with no route back to the lab's subnet: only NAT makes replies come home.
    sh([
      "ip",
      "-n",
      ns,
      "link",
      "add",
      "qco0",
      "type",
      "veth",
      "peer",
      "name",
      "qco1",
      "netns",
      outside,
    ]);
    sh(["ip", "-n", ns, "addr", "add", "198.51.100.1/24", "dev", "qco0"]);
    sh(["ip", "-n", ns, "link", "set", "qco0", "up"]);
    sh(["ip", "-n", outside, "addr", "add", "198.51.100.2/24", "dev", "qco1"]);
    sh(["ip", "-n", outside, "link", "set", "qco1", "up"]);
    // When br_netfilter is loaded, a new namespace starts with bridge-nf-call-* on: turn them off so
    // the FORWARD drop below breaks routed traffic only (doctor's bridge-nf-call finding is tested in unit tests).
    for (const k of ["iptables", "ip6tables", "arptables"]) {
      try {
        sh(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", `net.bridge.bridge-nf-call-${k}=0`]);
      } catch {
        // br_netfilter not loaded: nothing to turn off
      }
    }
    const r = env.qnet(["up", example("services"), "--netns", ns, "-q"]);
    assert.equal(r.status, 0, `up failed:\n${r.stderr}`);
  });
  after(() => {
    env.qnet(["down", "svc"]);
    delNetns(ns);
    delNetns(outside);
    env.cleanup();
  });

  test("every pair passes; a forward with nothing behind it is 'no listener in the guest', not a failure", () => {
    // The built-in guest's SSH server listens on 22: stop it, so nothing is behind the forward.
    const stop = env.qnet(["exec", "svc", "vm0", "--", "killall", "dropbear"]);
    assert.equal(stop.status, 0, stop.stderr);
    let { status, report } = checkJson(env, "svc", "--target", "198.51.100.2");
    // dropbear may take a moment to close its socket.
    for (
      let i = 0;
      i < 10 && report.pairs.find((p) => p.kind === "forward")?.status === "pass";
      i++
    ) {
      sh(["sleep", "0.2"]);
      ({ status, report } = checkJson(env, "svc", "--target", "198.51.100.2"));
    }
    assert.equal(status, 0, JSON.stringify(report.pairs, null, 2));
    const byId = new Map(report.pairs.map((p) => [p.id, p]));
    for (const id of ["vm0>nat:198.51.100.2", "vm1>nat:198.51.100.2"])
      assert.equal(byId.get(id)?.status, "pass", id);
    const fwd = report.pairs.find((p) => p.kind === "forward")!;
    assert.equal(fwd.status, "warn");
    assert.match(fwd.detail, /^no listener in the guest: .*nothing listens on tcp port 22 in vm0/);
    assert.deepEqual(report.summary, { pass: 8, fail: 0, warn: 1, skip: 0 });
  });

  test("with a listener in the guest the forward passes", () => {
    const start = env.qnet(["exec", "svc", "vm0", "--", "httpd", "-p", "22", "-h", "/"]);
    assert.equal(start.status, 0, start.stderr);
    let fwd: CheckReport["pairs"][number] | undefined;
    for (let i = 0; i < 10; i++) {
      fwd = checkJson(env, "svc").report.pairs.find((p) => p.kind === "forward");
      if (fwd?.status === "pass") break;
      sh(["sleep", "0.5"]);
    }
    assert.equal(fwd?.status, "pass", fwd?.detail);
    assert.ok((fwd?.latencyMs ?? 0) > 0);
  });

  test("a FORWARD drop in the namespace fails exactly the NAT pairs; the missing accept rules are the cause", () => {
    sh(
      ["ip", "netns", "exec", ns, "nft", "-f", "-"],
      "table inet qntest {\n chain qfwd {\n  type filter hook forward priority 0; policy drop;\n }\n}\n",
    );
    try {
      const { status, report } = checkJson(env, "svc", "--target", "198.51.100.2");
      assert.equal(status, 1);
      assert.deepEqual(failedIds(report), ["vm0>nat:198.51.100.2", "vm1>nat:198.51.100.2"]);
      for (const p of report.pairs.filter((x) => x.status === "fail"))
        assert.match(
          p.cause!,
          /^qnet's accept rules in nftables inet qntest qfwd is missing \(nftables \(table inet qntest, base chain qfwd.*`qnet up` repairs it/,
        );
      assert.ok(report.doctor.some((c) => c.id === "forward-policy" && c.status === "warn"));
    } finally {
      sh(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "qntest"]);
    }
  });
});

describe("qnet check: user-network forwards (user-forward)", () => {
  const ns = `qnt-check-usr-${process.pid}`;
  const env = qnetEnv();

  before(() => {
    addNetns(ns);
    const r = env.qnet(["up", example("user-forward"), "--netns", ns, "-q"]);
    assert.equal(r.status, 0, `up failed:\n${r.stderr}`);
  });
  after(() => {
    env.qnet(["down", "web"]);
    delNetns(ns);
    env.cleanup();
  });

  test("QEMU accepts every forward: the guest says which ones have a listener", () => {
    // On 22, the built-in guest's SSH server; nothing on 80.
    const { status, report } = checkJson(env, "web");
    assert.equal(status, 0, JSON.stringify(report.pairs, null, 2));
    assert.deepEqual(
      report.pairs.map((p) => [p.kind, p.address, p.port, p.status]),
      [
        ["vm-gateway", "10.0.2.2", null, "pass"],
        ["forward", "127.0.0.1", 2222, "pass"],
        ["forward", "127.0.0.1", 8080, "warn"],
      ],
    );
    assert.match(report.pairs[2]!.detail, /no listener in the guest/);
  });
});
