// Links you can shape and watch, for real: built-in guests in a namespace, impairments applied by `up`
// and by `qnet impair`, drift repaired, iperf3 through `qnet perf`, pcap through `qnet capture` (tcpdump
// on a tap, QEMU's filter-dump on a user network), and `down` leaving no qdisc or ifb behind.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { kernelFeatures } from "../../src/host/tc-observe.js";
import { CLI } from "../helpers/topology.js";
import { hostSnapshot, leftovers, qnetWith, sleepMs, vmPid } from "./helpers/host-state.js";
import { addNetns, delNetns, sh } from "./helpers/netns.js";

const LAB = `name: lk
networks:
  lan:
    type: bridge
    subnet: 10.0.7.0/24
  wan:
    type: user
vms:
  vm0:
    nics:
      - network: lan
        impair: { rate: 1mbit }
  vm1:
    nics:
      - network: lan
  vm2:
    nics:
      - network: wan
`;

interface Obj {
  kind: string;
  name: string;
  state: string;
  detail: string;
}

const netem = kernelFeatures(["sch_netem"]).get("sch_netem")!;

describe("links: impairments, perf and capture on a running lab", () => {
  const ns = `qnt-links-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), "qnet-links-"));
  const fileDir = mkdtempSync(join(tmpdir(), "qnet-links-file-"));
  const file = join(fileDir, "lk.yaml");
  const q = (...args: string[]) => qnetWith(root, args, {}, 240_000);
  const status = (): { ok: boolean; objects: Obj[] } =>
    JSON.parse(q("status", "lk", "--json").stdout);
  const plan = (): { kind: string; object: string; what: string }[] =>
    JSON.parse(q("plan", file, "--netns", ns, "--json").stdout).changes;
  const qdiscs = () =>
    JSON.parse(sh(["ip", "netns", "exec", ns, "tc", "-json", "qdisc", "show"]) || "[]") as {
      dev: string;
      handle: string;
      kind: string;
    }[];
  let snap: ReturnType<typeof hostSnapshot>;
  let tap0 = "";
  let tap1 = "";

  before(() => {
    writeFileSync(file, LAB);
    addNetns(ns);
    snap = hostSnapshot(ns);
    const r = q("up", file, "--netns", ns);
    assert.equal(r.status, 0, r.stderr);
    const taps = status().objects.filter((o) => o.kind === "tap");
    tap0 = taps.find((o) => o.detail.startsWith("vm0 "))!.name;
    tap1 = taps.find((o) => o.detail.startsWith("vm1 "))!.name;
  });
  after(() => {
    q("down", "lk");
    delNetns(ns);
    rmSync(root, { recursive: true, force: true });
    rmSync(fileDir, { recursive: true, force: true });
  });

  test("up applies the impairment: plan is then empty, status healthy, impair and ifb present", () => {
    assert.deepEqual(plan(), []);
    const s = status();
    assert.equal(s.ok, true, JSON.stringify(s.objects.filter((o) => o.state !== "present")));
    const imp = s.objects.find((o) => o.kind === "impair" && o.name === tap0)!;
    assert.match(imp.detail, /vm0 nic 0: rate 1mbit \(each direction\)/);
    assert.ok(s.objects.some((o) => o.kind === "ifb" && o.state === "present"));
    // tbf on the tap (frames to vm0) and on the ifb (frames from vm0); the tap's ingress redirected.
    const mine = qdiscs().filter((x) => x.handle === "5154:");
    assert.deepEqual(mine.map((x) => x.kind).sort(), ["tbf", "tbf"]);
    assert.ok(qdiscs().some((x) => x.dev === tap0 && x.kind === "ingress"));
    assert.match(q("diagram", "lk").stdout, /impaired: rate 1mbit/);
  });

  test("rate: 1mbit caps qnet perf within ±30%, in both directions; the unimpaired path is faster", () => {
    for (const [from, to] of [
      ["vm0", "vm1"],
      ["vm1", "vm0"],
    ]) {
      const r = q("perf", "lk", from!, to!, "--seconds", "5", "--json");
      assert.equal(r.status, 0, r.stderr);
      const p = JSON.parse(r.stdout);
      assert.ok(
        p.receivedBps > 0.7e6 && p.receivedBps < 1.3e6,
        `${from} → ${to}: ${p.receivedBps} bit/s received`,
      );
    }
    const free = JSON.parse(q("perf", "lk", "host", "vm1", "--seconds", "3", "--json").stdout);
    assert.ok(free.receivedBps > 5e6, `host → vm1 (no impairment): ${free.receivedBps} bit/s`);
  });

  test("drift: a qdisc removed and one changed by hand are named by status as plan changes them; up repairs exactly that", () => {
    const pids = { vm0: vmPid(root, "lk", "vm0"), vm1: vmPid(root, "lk", "vm1") };
    sh(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", tap0, "root"]);
    let bad = status().objects.filter((o) => o.state !== "present");
    assert.deepEqual(
      bad.map((o) => `${o.kind} ${o.name}`),
      [`impair ${tap0}`],
    );
    assert.match(bad[0]!.detail, /frames to vm0 nic 0: no qdisc of qnet's, wanted rate 1mbit/);
    assert.deepEqual([...new Set(plan().map((c) => `${c.kind} ${c.object}`))], [`impair ${tap0}`]);
    let up = q("up", file, "--netns", ns);
    assert.equal(up.status, 0, up.stderr);
    assert.deepEqual(plan(), []);
    // The ifb's tbf changed by hand.
    const ifb = status().objects.find((o) => o.kind === "ifb")!.name;
    sh([
      "ip",
      "netns",
      "exec",
      ns,
      "tc",
      "qdisc",
      "change",
      "dev",
      ifb,
      "root",
      "handle",
      "5154:",
      "tbf",
      "rate",
      "5mbit",
      "burst",
      "6056",
      "latency",
      "200ms",
    ]);
    bad = status().objects.filter((o) => o.state !== "present");
    assert.deepEqual(
      bad.map((o) => `${o.kind} ${o.name}`),
      [`impair ${tap0}`],
    );
    assert.match(
      bad[0]!.detail,
      /frames from vm0 nic 0: tbf rate 5mbit on qnifb-\w+, wanted rate 1mbit/,
    );
    up = q("up", file, "--netns", ns);
    assert.equal(up.status, 0, up.stderr);
    assert.equal(status().ok, true);
    assert.deepEqual(plan(), []);
    assert.deepEqual(
      { vm0: vmPid(root, "lk", "vm0"), vm1: vmPid(root, "lk", "vm1") },
      pids,
      "VMs kept their PIDs",
    );
  });

  test("qnet impair: a live change is journaled, listed, kept by status and a later up (they never fight), then cleared and reset", () => {
    let r = q("impair", "lk", "vm1", "--rate", "2mbit");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /vm1:0 \(qntap-\w+\): none → rate 2mbit \(live\)/);
    let list = JSON.parse(q("impair", "lk", "--json").stdout) as {
      vm: string;
      inForce: string;
      origin: string;
      state: string;
    }[];
    assert.deepEqual(
      list.map((x) => [x.vm, x.inForce, x.origin, x.state]),
      [
        ["vm0", "rate 1mbit", "topology", "present"],
        ["vm1", "rate 2mbit", "live", "present"],
      ],
    );
    assert.equal(status().ok, true);
    assert.deepEqual(plan(), [], "up would not undo the live change");
    const p = JSON.parse(q("perf", "lk", "host", "vm1", "--seconds", "4", "--json").stdout);
    assert.ok(
      p.receivedBps > 1.4e6 && p.receivedBps < 2.6e6,
      `host → vm1 at 2mbit: ${p.receivedBps}`,
    );
    r = q("impair", "lk", "vm0", "--clear");
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      !qdiscs().some((x) => x.dev === tap0 && (x.handle === "5154:" || x.kind === "ingress")),
      "vm0's qdiscs are gone",
    );
    assert.equal(status().ok, true);
    assert.deepEqual(plan(), []);
    r = q("impair", "lk", "vm0", "--reset");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /none → rate 1mbit \(the topology's\)/);
    r = q("impair", "lk", "vm1", "--reset");
    assert.equal(r.status, 0, r.stderr);
    list = JSON.parse(q("impair", "lk", "--json").stdout);
    assert.deepEqual(
      list.map((x) => [x.vm, x.inForce, x.origin]),
      [
        ["vm0", "rate 1mbit", "topology"],
        ["vm1", "none", "topology"],
      ],
    );
    assert.ok(!qdiscs().some((x) => x.dev === tap1 && x.handle === "5154:"));
  });

  test("bad values are refused with the flag named, and a user-network NIC cannot be impaired", () => {
    const before_ = qdiscs();
    let r = q("impair", "lk", "vm1", "--rate", "1mbps");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--rate: found "1mbps": rates are written in bits per second/);
    r = q("impair", "lk", "vm1", "--jitter", "5ms");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--jitter: jitter varies a delay: give `delay` too/);
    r = q("impair", "lk", "vm2", "--rate", "1mbit");
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      /vm2 nic 0 is on network wan: QEMU's user networking has no host device/,
    );
    assert.deepEqual(qdiscs(), before_);
  });

  if (netem.state === "absent") {
    test(`this kernel has no netem (${netem.source}): delay is refused before anything changes`, () => {
      const before_ = qdiscs();
      const r = q("impair", "lk", "vm1", "--delay", "40ms");
      assert.equal(r.status, 1);
      assert.match(
        r.stderr,
        /the running kernel has no sch_netem .*CONFIG_NET_SCH_NETEM is not set.*nothing was changed/,
      );
      assert.deepEqual(qdiscs(), before_);
      assert.equal(status().ok, true);
    });
  } else {
    test("delay: 40ms makes the RTT ≥ 80 ms both ways; --clear brings it under 30 ms; loss: 100% cuts the link and check names it", () => {
      const rtt = (from: string, to: string) => {
        const r = q("exec", "lk", from, "--", "ping", "-c", "3", "-W", "3", to);
        const m = /min\/avg\/max = ([\d.]+)\/([\d.]+)/.exec(r.stdout);
        assert.ok(m, r.stdout + r.stderr);
        return Number(m[1]);
      };
      assert.equal(q("impair", "lk", "vm1", "--delay", "40ms").status, 0);
      assert.ok(rtt("vm1", "10.0.7.2") >= 80);
      assert.ok(rtt("vm0", "10.0.7.3") >= 80);
      assert.equal(q("impair", "lk", "vm1", "--clear").status, 0);
      assert.ok(rtt("vm1", "10.0.7.2") < 30);
      assert.equal(q("impair", "lk", "vm1", "--loss", "100%").status, 0);
      const c = JSON.parse(q("check", "lk", "--json").stdout);
      const fail = c.pairs.find(
        (p: { from: string; status: string }) => p.from === "vm1" && p.status === "fail",
      );
      assert.match(fail.cause, /impair/);
      assert.equal(q("impair", "lk", "vm1", "--reset").status, 0);
    });
  }

  test("capture -c 5 during a ping: a pcap tcpdump reads as ICMP (a tap)", () => {
    const out = join(root, "tap.pcap");
    const ping = spawn(
      process.execPath,
      [
        CLI,
        "exec",
        "--state-dir",
        root,
        "lk",
        "vm1",
        "--",
        "ping",
        "-c",
        "30",
        "-i",
        "0.2",
        "10.0.7.1",
      ],
      { stdio: "ignore" },
    );
    try {
      const r = q("capture", "lk", "vm1", "-c", "5", "--filter", "icmp", "-w", out);
      assert.equal(r.status, 0, r.stderr);
    } finally {
      ping.kill();
    }
    const read = spawnSync("tcpdump", ["-n", "-r", out], { encoding: "utf8" });
    assert.equal(read.status, 0, read.stderr);
    const lines = read.stdout.trim().split("\n");
    assert.equal(lines.length, 5);
    for (const l of lines) assert.match(l, /ICMP echo (request|reply)/);
  });

  test("capture on a user network through filter-dump, to stdout; nothing stays attached", () => {
    const ping = spawn(
      process.execPath,
      [
        CLI,
        "exec",
        "--state-dir",
        root,
        "lk",
        "vm2",
        "--",
        "ping",
        "-c",
        "30",
        "-i",
        "0.2",
        "10.0.2.2",
      ],
      { stdio: "ignore" },
    );
    let pcap: Buffer;
    try {
      const r = spawnSync(
        process.execPath,
        [
          CLI,
          "capture",
          "--state-dir",
          root,
          "lk",
          "vm2",
          "-c",
          "5",
          "--filter",
          "icmp",
          "-w",
          "-",
        ],
        { timeout: 60_000 },
      );
      assert.equal(r.status, 0, r.stderr?.toString());
      pcap = r.stdout;
    } finally {
      ping.kill();
    }
    const read = spawnSync("tcpdump", ["-n", "-r", "-"], { input: pcap, encoding: "utf8" });
    assert.equal(read.status, 0, read.stderr);
    const lines = read.stdout.trim().split("\n");
    assert.equal(lines.length, 5);
    for (const l of lines) assert.match(l, /10\.0\.2\.\d+ > 10\.0\.2\.\d+: ICMP echo/);
    // No filter-dump object is left on the VM, and the FIFO is gone.
    const objs = qmpObjects(join(root, "lk", "vm", "vm2.qmp"));
    assert.ok(!objs.some((o) => o.startsWith("qnet-capture")), objs.join(", "));
  });

  test("Ctrl-C ends a capture cleanly (exit 0, a readable pcap)", () => {
    const out = join(root, "int.pcap");
    const child = spawnSync(
      "sh",
      [
        "-c",
        `"$0" "$1" capture --state-dir "$2" lk vm1 -w "$3" & pid=$!; sleep 3; kill -INT $pid; wait $pid`,
        process.execPath,
        CLI,
        root,
        out,
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.equal(child.status, 0, child.stderr);
    assert.equal(spawnSync("tcpdump", ["-r", out]).status, 0);
  });

  test("down removes every qdisc and ifb qnet added, and leaves the namespace as it was", () => {
    const r = q("down", "lk");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      qdiscs().filter((x) => x.handle === "5154:" || x.kind === "ingress"),
      [],
    );
    const links = JSON.parse(sh(["ip", "-n", ns, "-json", "link", "show"])) as { ifname: string }[];
    assert.deepEqual(
      links.filter((l) => l.ifname.startsWith("qnifb-")),
      [],
    );
    sleepMs(200);
    assert.deepEqual(leftovers(root, "lk"), []);
    assert.deepEqual(hostSnapshot(ns), snap);
  });
});

/** The ids of a running QEMU's user-created objects (qom-list /objects), through its QMP socket. */
function qmpObjects(socket: string): string[] {
  const script = `
const c = require("net").connect(${JSON.stringify(socket)});
let buf = ""; let step = 0;
c.on("data", (d) => {
  buf += d;
  for (;;) {
    const i = buf.indexOf("\\n"); if (i < 0) break;
    const m = JSON.parse(buf.slice(0, i)); buf = buf.slice(i + 1);
    if (m.QMP) c.write(JSON.stringify({ execute: "qmp_capabilities" }) + "\\n");
    else if (m.return !== undefined && step++ === 0) c.write(JSON.stringify({ execute: "qom-list", arguments: { path: "/objects" } }) + "\\n");
    else if (m.return !== undefined) { process.stdout.write(JSON.stringify(m.return.map((o) => o.name))); process.exit(0); }
  }
});`;
  const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 10_000 });
  return JSON.parse(r.stdout || "[]");
}
