// The seed's section 2 for real: examples/lan-bridge.yaml in a `host` namespace whose eth0 leads to a
// `lan` namespace with a router (bridge + dnsmasq DHCP); VMs lease from the router, status shows it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO_ROOT } from "../helpers/golden.js";
import { pingFrom, settled, startRouter, stopRouter } from "./helpers/lan.js";
import { addNetns, delNetns, qemuPids, qnetEnv, sh, snapshot } from "./helpers/netns.js";

const P = `qnt-lanbr-${process.pid}`;
const LAN = `${P}-lan`;
const HOST = `${P}-host`;
const EXAMPLE = join(REPO_ROOT, "examples", "lan-bridge.yaml");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface VmObject {
  kind: string;
  name: string;
  state: string;
  detail: string;
  addresses?: Array<{ nic: number; network: string; mac: string; ipv4: string[] }> | null;
}

describe("lan-bridge: VMs on the LAN lease from its router", () => {
  const env = qnetEnv();
  const dir = mkdtempSync(join(tmpdir(), "qnt-lanbr-router-"));
  let before_: ReturnType<typeof snapshot>;
  const vmIps: Record<string, string> = {};
  let upPing: RegExpExecArray | null = null;

  const statusJson = (): { ok: boolean; objects: VmObject[] } => {
    const r = env.qnet(["status", "office", "--json"]);
    assert.equal(r.status, 0, `status failed:\n${r.stdout}${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const vmObjects = () => statusJson().objects.filter((o) => o.kind === "vm");

  before(async () => {
    addNetns(LAN);
    addNetns(HOST);
    startRouter(LAN, HOST, dir);
    await settled(HOST);
    assert.ok(pingFrom(HOST, "192.168.50.1"), "the router answers before up");
    before_ = snapshot(HOST);
    // A 10 ms ping to the router runs across the whole `up` (uplink move included); -q: summary only.
    const pinger = spawn(
      "ip",
      ["netns", "exec", HOST, "ping", "-q", "-i", "0.01", "192.168.50.1"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let pingOut = "";
    pinger.stdout.on("data", (d) => {
      pingOut += d;
    });
    const pingDone = new Promise((res) => pinger.on("exit", res));
    await sleep(300);
    const r = env.qnet(["up", "--netns", HOST, EXAMPLE]);
    await sleep(300);
    pinger.kill("SIGINT");
    await pingDone;
    upPing = /(\d+) packets transmitted, (\d+) received/.exec(pingOut);
    assert.ok(upPing, `ping output: ${pingOut}`);
    assert.equal(r.status, 0, `up failed:\n${r.stderr}`);
    assert.match(r.stderr, /VM vm0: ready/);
    assert.match(r.stderr, /VM vm1: ready/);
  });

  after(() => {
    env.qnet(["down", "office"]);
    stopRouter(dir);
    delNetns(HOST);
    delNetns(LAN);
    env.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("no 10 ms ping from the host namespace to the router was lost during up", () => {
    const [, sent, received] = upPing!;
    console.log(`during up: ${sent} pings sent, ${received} received`);
    assert.ok(Number(sent) > 100, `only ${sent} pings sent`);
    assert.equal(received, sent, `${sent} sent, ${received} received during up`);
  });

  test("status shows the 192.168.50.x lease each VM got from the router", async () => {
    let vms = vmObjects();
    // udhcpc runs before the agent starts, so a lease is normally there at once; allow a retry.
    for (let i = 0; i < 20 && !vms.every((o) => o.addresses?.[0]?.ipv4.length); i++) {
      await sleep(1000);
      vms = vmObjects();
    }
    const leases = readFileSync(join(dir, "leases"), "utf8");
    for (const o of vms) {
      assert.equal(o.state, "present", `${o.name}: ${o.detail}`);
      assert.equal(o.addresses?.length, 1, `${o.name}: ${JSON.stringify(o.addresses)}`);
      const nic = o.addresses![0]!;
      assert.equal(nic.network, "lan");
      assert.equal(nic.ipv4.length, 1, `${o.name} IPv4: ${nic.ipv4.join(" ")}`);
      const m = /^192\.168\.50\.(\d+)\/24$/.exec(nic.ipv4[0]!);
      assert.ok(m, `${o.name} got ${nic.ipv4[0]}`);
      assert.ok(
        Number(m[1]) >= 100 && Number(m[1]) <= 200,
        `${nic.ipv4[0]} is from the router's pool`,
      );
      // The router's lease file names the VM's MAC with that address.
      assert.match(
        leases,
        new RegExp(`${nic.mac} ${nic.ipv4[0]!.split("/")[0]!.replace(/\./g, "\\.")} `),
      );
      assert.match(o.detail, new RegExp(`lan ${nic.ipv4[0]!.replace(/\./g, "\\.")}`));
      vmIps[o.name] = nic.ipv4[0]!.split("/")[0]!;
    }
    assert.deepEqual(Object.keys(vmIps).sort(), ["vm0", "vm1"]);
    assert.notEqual(vmIps.vm0, vmIps.vm1);
    const all = statusJson();
    assert.equal(all.ok, true, JSON.stringify(all.objects));
    // The LAN bridge is the uplink move's object: the bridge holding eth0 and its addresses.
    const br = all.objects.find((o) => o.kind === "uplink" && o.name === "br0");
    assert.equal(br?.state, "present", JSON.stringify(br));
    assert.match(br!.detail, /uplink eth0, 192\.168\.50\.2\/24/);
    assert.equal(all.objects.filter((o) => o.kind === "tap" && o.state === "present").length, 2);
    const text = env.qnet(["status", "office"]);
    console.log(text.stdout);
    assert.equal(text.status, 0, text.stdout + text.stderr);
    for (const ip of Object.values(vmIps)) assert.ok(text.stdout.includes(`${ip}/24`), text.stdout);
    // Right after up, plan has nothing to change.
    const plan = env.qnet(["plan", "--netns", HOST, EXAMPLE, "--json"]);
    assert.equal(plan.status, 0, plan.stderr);
    assert.deepEqual(JSON.parse(plan.stdout).changes, []);
  });

  test("the VMs ping the router and each other", () => {
    assert.equal(Object.keys(vmIps).length, 2, "addresses from the status test");
    for (const [vm, target] of [
      ["vm0", "192.168.50.1"],
      ["vm1", "192.168.50.1"],
      ["vm0", vmIps.vm1!],
      ["vm1", vmIps.vm0!],
    ] as const) {
      const r = env.qnet(["exec", "office", vm, "--", "ping", "-c1", "-W3", target]);
      assert.equal(r.status, 0, `${vm} -> ${target}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /1 packets received/);
    }
  });

  test("the router pings the VMs; the host namespace still reaches the router", () => {
    for (const ip of Object.values(vmIps)) assert.ok(pingFrom(LAN, ip), `router -> ${ip}`);
    assert.ok(pingFrom(HOST, "192.168.50.1"), "host -> router");
  });

  test("a stalled guest agent makes status say so, quickly, without failing", () => {
    // Freeze vm1's agent a second from now (the exec's own reply must get through first).
    const r = env.qnet([
      "exec",
      "office",
      "vm1",
      "--",
      "sh",
      "-c",
      "(sleep 1; kill -STOP $(pidof qemu-ga)) </dev/null >/dev/null 2>&1 &",
    ]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    sh(["sleep", "2"]);
    const t0 = Date.now();
    const vms = vmObjects();
    const took = Date.now() - t0;
    const vm1 = vms.find((o) => o.name === "vm1")!;
    const vm0 = vms.find((o) => o.name === "vm0")!;
    assert.equal(vm1.state, "present");
    assert.equal(vm1.addresses, null);
    assert.match(vm1.detail, /agent not answering/);
    assert.deepEqual(vm0.addresses?.[0]?.ipv4, [`${vmIps.vm0}/24`]);
    assert.ok(took < 10_000, `status took ${took} ms`);
  });

  test("down restores the host namespace exactly and leaves no QEMU", () => {
    const r = env.qnet(["down", "office"]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(snapshot(HOST), before_);
    assert.deepEqual(qemuPids("office"), []);
    assert.ok(pingFrom(HOST, "192.168.50.1"), "host -> router after down");
  });
});
