// Fault injection with real QEMU, dnsmasq and nft: SIGKILL after each journal entry, drift repair, half-way failures.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO_ROOT } from "../helpers/golden.js";
import {
  hostSnapshot,
  leftovers,
  qnetWith,
  readPid,
  sleepMs,
  states,
  statusOf,
  vmPid,
} from "./helpers/host-state.js";
import { addNetns, delNetns, sh } from "./helpers/netns.js";

const SERVICES = join(REPO_ROOT, "examples", "services.yaml");
const USER_FORWARD = join(REPO_ROOT, "examples", "user-forward.yaml");
const newRoot = () => mkdtempSync(join(tmpdir(), "qnet-faults-"));
const journalLength = (root: string, lab: string) =>
  readFileSync(join(root, lab, "journal.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean).length;

/** Faults injected in this file (printed at the end for the README's reliability section). */
let faults = 0;
process.on("exit", () => console.log(`# faults injected: ${faults}`));

describe("SIGKILL after each journal entry, then down (services.yaml with 2 VMs)", () => {
  const ns = `qnt-rel-kill-${process.pid}`;
  const root = newRoot();
  let snap: ReturnType<typeof hostSnapshot>;
  let entries = 0;
  let kinds: string[] = [];

  before(() => {
    addNetns(ns);
    snap = hostSnapshot(ns);
    const r = qnetWith(root, ["up", SERVICES, "--netns", ns]);
    assert.equal(r.status, 0, r.stderr);
    entries = journalLength(root, "svc");
    kinds = readFileSync(join(root, "svc", "journal.jsonl"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l).undo.kind as string);
    assert.equal(qnetWith(root, ["down", "svc"]).status, 0);
    assert.deepEqual(hostSnapshot(ns), snap);
  });
  after(() => {
    qnetWith(root, ["down", "svc"]);
    delNetns(ns);
    rmSync(root, { recursive: true, force: true });
  });

  test("a full up journals links, sysctls, nft, dnsmasq and both VMs", () => {
    for (const k of ["link", "sysctl", "nft-table", "process"]) assert.ok(kinds.includes(k), k);
    assert.ok(entries >= 9, `only ${entries} entries`);
  });

  test("killed after entry K (every K), down leaves nothing and the namespace as it was", () => {
    const killPoints = new Set<number>();
    for (let k = 1; k <= entries; k++) {
      const up = qnetWith(root, ["up", SERVICES, "--netns", ns], { QNET_KILL_AFTER: String(k) });
      assert.equal(up.signal, "SIGKILL", `K=${k}: up was not killed (exit ${up.status})`);
      // Entries journaled together (all links of one ip -batch) share one kill point.
      const n = journalLength(root, "svc");
      assert.ok(n >= k, `K=${k}: journal has ${n} entries`);
      killPoints.add(n);
      faults++;
      const down = qnetWith(root, ["down", "svc"]);
      assert.equal(down.status, 0, `K=${k}: down failed: ${down.stderr}`);
      assert.deepEqual(leftovers(root, "svc"), [], `K=${k}: leftovers`);
      assert.deepEqual(hostSnapshot(ns), snap, `K=${k}: namespace differs`);
    }
    console.log(
      `# services.yaml: ${entries} entries, ${entries} kills at ${killPoints.size} distinct points`,
    );
  });
});

describe("SIGKILL after each journal entry in a namespace qnet creates (--no-vms)", () => {
  const ns = `qnt-rel-kns-${process.pid}`;
  const root = newRoot();
  let entries = 0;
  const nsList = () => sh(["ip", "netns", "list"]);

  before(() => {
    const r = qnetWith(root, ["up", SERVICES, "--netns", ns, "--no-vms"]);
    assert.equal(r.status, 0, r.stderr);
    entries = journalLength(root, "svc");
    assert.equal(qnetWith(root, ["down", "svc"]).status, 0);
    assert.doesNotMatch(nsList(), new RegExp(`^${ns}\\b`, "m"));
  });
  after(() => {
    qnetWith(root, ["down", "svc"]);
    delNetns(ns);
    rmSync(root, { recursive: true, force: true });
  });

  test("every entry, namespace creation included: down removes the namespace and every file", () => {
    assert.ok(entries >= 8, `only ${entries} entries`); // netns, links, sysctls, nft, dnsmasq, ...
    for (let k = 1; k <= entries; k++) {
      const up = qnetWith(root, ["up", SERVICES, "--netns", ns, "--no-vms"], {
        QNET_KILL_AFTER: String(k),
      });
      assert.equal(up.signal, "SIGKILL", `K=${k}: up was not killed`);
      faults++;
      const down = qnetWith(root, ["down", "svc"]);
      assert.equal(down.status, 0, `K=${k}: down failed: ${down.stderr}`);
      assert.deepEqual(leftovers(root, "svc"), [], `K=${k}: leftovers`);
      assert.doesNotMatch(nsList(), new RegExp(`^${ns}\\b`, "m"), `K=${k}: namespace left`);
    }
  });
});

describe("drift in a running lab: status reports it, up repairs exactly that", () => {
  const ns = `qnt-rel-drift-${process.pid}`;
  const root = newRoot();
  let snap: ReturnType<typeof hostSnapshot>;
  const dnsmasqPid = () => readPid(join(root, "svc", "dnsmasq-lan.pid"));
  const pids = () => ({
    vm0: vmPid(root, "svc", "vm0"),
    vm1: vmPid(root, "svc", "vm1"),
    dnsmasq: dnsmasqPid(),
  });
  const up = () => {
    const r = qnetWith(root, ["up", SERVICES, "--netns", ns]);
    assert.equal(r.status, 0, r.stderr);
    return r;
  };
  const tapOf = (vm: string) => {
    const o = statusOf(root, "svc").objects.find(
      (x) => x.kind === "tap" && x.detail.startsWith(`${vm} `),
    );
    assert.ok(o, `no tap for ${vm} in status`);
    return o.name;
  };
  const healthy = () => {
    const s = statusOf(root, "svc");
    assert.equal(s.ok, true, JSON.stringify(s.objects.filter((o) => o.state !== "present")));
  };

  before(() => {
    addNetns(ns);
    snap = hostSnapshot(ns);
    up();
    healthy();
  });
  after(() => {
    qnetWith(root, ["down", "svc"]);
    delNetns(ns);
    rmSync(root, { recursive: true, force: true });
  });

  test("a VM's QEMU killed: status says missing; up restarts only that VM", () => {
    const p = pids();
    process.kill(p.vm0!, "SIGKILL");
    sleepMs(300);
    faults++;
    const st = states(statusOf(root, "svc"));
    assert.equal(st["vm vm0"], "missing");
    assert.equal(st["vm vm1"], "present");
    assert.equal(st["dnsmasq lan"], "present");
    up();
    const q = pids();
    assert.ok(q.vm0 && q.vm0 !== p.vm0, "vm0 was not restarted");
    assert.equal(q.vm1, p.vm1, "vm1 was restarted");
    assert.equal(q.dnsmasq, p.dnsmasq, "dnsmasq was restarted");
    healthy();
  });

  test("dnsmasq killed: status says missing; up restarts it and no VM", () => {
    const p = pids();
    process.kill(p.dnsmasq!, "SIGKILL");
    sleepMs(300);
    faults++;
    const st = states(statusOf(root, "svc"));
    assert.equal(st["dnsmasq lan"], "missing");
    assert.equal(st["vm vm0"], "present");
    up();
    const q = pids();
    assert.ok(q.dnsmasq && q.dnsmasq !== p.dnsmasq, "dnsmasq was not restarted");
    assert.equal(q.vm0, p.vm0);
    assert.equal(q.vm1, p.vm1);
    healthy();
  });

  test("a tap deleted: status says drifted; up recreates it and reattaches only its VM", () => {
    const p = pids();
    const tap = tapOf("vm1");
    sh(["ip", "-n", ns, "link", "del", tap]);
    faults++;
    assert.notEqual(states(statusOf(root, "svc"))[`tap ${tap}`], "present");
    const r = up();
    assert.match(r.stdout, new RegExp(`create tap ${tap}`));
    const q = pids();
    // QEMU holds the deleted tap's file: the VM must be restarted to use the new one.
    assert.ok(q.vm1 && q.vm1 !== p.vm1, "vm1 kept a dead tap");
    assert.equal(q.vm0, p.vm0, "vm0 was restarted");
    assert.equal(q.dnsmasq, p.dnsmasq, "dnsmasq was restarted");
    healthy();
    const ping = qnetWith(root, ["exec", "svc", "vm1", "--", "ping", "-c1", "-W3", "10.10.0.1"]);
    assert.equal(ping.status, 0, `vm1 cannot reach the gateway after the repair: ${ping.stdout}`);
  });

  test("the nft table deleted: status says missing; up restores it and touches no process", () => {
    const p = pids();
    sh(["ip", "netns", "exec", ns, "nft", "delete", "table", "ip", "qnet-svc"]);
    faults++;
    assert.equal(states(statusOf(root, "svc"))["nft-table ip qnet-svc"], "missing");
    up();
    assert.match(sh(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", "qnet-svc"]), /dnat/);
    assert.deepEqual(pids(), p);
    healthy();
  });

  test("the nft table flushed: status says drifted; up restores its rules and touches no process", () => {
    const p = pids();
    sh(["ip", "netns", "exec", ns, "nft", "flush", "table", "ip", "qnet-svc"]);
    faults++;
    assert.doesNotMatch(
      sh(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", "qnet-svc"]),
      /dnat/,
    );
    assert.equal(states(statusOf(root, "svc"))["nft-table ip qnet-svc"], "drifted");
    up();
    assert.equal(states(statusOf(root, "svc"))["nft-table ip qnet-svc"], "present");
    assert.match(sh(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", "qnet-svc"]), /dnat/);
    assert.deepEqual(pids(), p);
  });

  test("after the repairs a second up changes nothing, and down restores the namespace", () => {
    const p = pids();
    const r = up();
    assert.doesNotMatch(r.stdout, /^\s+\+/m, `second up changed something:\n${r.stdout}`);
    assert.deepEqual(pids(), p);
    assert.equal(qnetWith(root, ["down", "svc"]).status, 0);
    assert.deepEqual(leftovers(root, "svc"), []);
    assert.deepEqual(hostSnapshot(ns), snap);
  });
});

describe("a command that fails half way rolls back everything of its run", () => {
  const ns = `qnt-rel-half-${process.pid}`;
  const root = newRoot();
  let snap: ReturnType<typeof hostSnapshot>;
  let listener: ReturnType<typeof spawn> | null = null;

  /** A TCP listener inside the namespace on 127.0.0.1:port (node, killed by PID in `stop`). */
  const listen = (port: number) => {
    const script = `require("net").createServer(s=>s.end("mine\\n")).listen(${port},"127.0.0.1",()=>console.log("up"))`;
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    listener = child;
    return new Promise<void>((res) => child.stdout!.once("data", () => res()));
  };
  const stop = () => {
    listener?.kill("SIGKILL");
    listener = null;
    sleepMs(200);
  };

  before(() => {
    addNetns(ns);
    snap = hostSnapshot(ns);
  });
  after(() => {
    stop();
    qnetWith(root, ["down", "svc"]);
    qnetWith(root, ["down", "web"]);
    delNetns(ns);
    rmSync(root, { recursive: true, force: true });
  });

  test("a bridge forward whose host port is taken: refused, rolled back, listener untouched", async () => {
    await listen(8022);
    const before_ = hostSnapshot(ns);
    const r = qnetWith(root, ["up", SERVICES, "--netns", ns]);
    faults++;
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /forward host port already in use.*tcp:8022:vm0:22.*node \(pid \d+\)/);
    assert.match(r.stderr, /rolling back/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "a stack trace was printed");
    assert.deepEqual(hostSnapshot(ns), before_);
    assert.deepEqual(leftovers(root, "svc"), []);
    const got = sh([
      "ip",
      "netns",
      "exec",
      ns,
      process.execPath,
      "-e",
      `require("net").connect(8022,"127.0.0.1").on("data",d=>{process.stdout.write(d);process.exit(0)})`,
    ]);
    assert.equal(got.trim(), "mine");
    stop();
  });

  test("a user-network forward whose port is taken: QEMU fails, the run is rolled back", async () => {
    await listen(2222);
    const r = qnetWith(root, ["up", USER_FORWARD, "--netns", ns]);
    faults++;
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /VM vm failed to start/);
    assert.match(r.stderr, /2222/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "a stack trace was printed");
    stop();
    assert.deepEqual(hostSnapshot(ns), snap);
    assert.deepEqual(leftovers(root, "web"), []);
  });

  test("with the port free again, the same file comes up and goes down cleanly", () => {
    const r = qnetWith(root, ["up", SERVICES, "--netns", ns, "--no-vms"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(qnetWith(root, ["down", "svc"]).status, 0);
    assert.deepEqual(hostSnapshot(ns), snap);
  });
});
