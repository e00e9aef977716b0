// `mode: macvtap` for real: VMs on macvtaps of the host's eth0 lease from the LAN's router and reach it and
// each other; `down` restores the host namespace exactly (the seed's section 2 without a bridge).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { settled, startRouter, stopRouter } from "./helpers/lan.js";
import { addNetns, delNetns, qemuPids, qnetEnv, snapshot } from "./helpers/netns.js";

const P = `qnt-mvt-${process.pid}`;
const LAN = `${P}-lan`;
const HOST = `${P}-host`;
const LAB = `mvt${process.pid}`;

describe("macvtap: VMs on the LAN through macvtaps of the uplink", () => {
  const env = qnetEnv();
  const dir = mkdtempSync(join(tmpdir(), "qnt-mvt-"));
  const file = join(dir, "lab.yaml");
  let before_: ReturnType<typeof snapshot>;
  const ips: Record<string, string> = {};

  before(async () => {
    addNetns(LAN);
    addNetns(HOST);
    startRouter(LAN, HOST, dir);
    await settled(HOST);
    before_ = snapshot(HOST);
    writeFileSync(
      file,
      `name: ${LAB}\nnetworks:\n  lan: { type: bridged, uplink: eth0, mode: macvtap }\nvms:\n  vm0: { nics: [{ network: lan }] }\n  vm1: { nics: [{ network: lan }] }\n`,
    );
  });

  after(() => {
    env.qnet(["down", LAB]);
    stopRouter(dir);
    delNetns(HOST);
    delNetns(LAN);
    env.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("up starts both VMs on their macvtaps, and plan is empty afterwards", () => {
    const r = env.qnet(["up", "--netns", HOST, file]);
    assert.equal(r.status, 0, `up failed:\n${r.stderr}`);
    assert.match(r.stdout, /create macvtap .* on eth0 for vm0/);
    assert.match(r.stderr, /VM vm1: ready/);
    const plan = env.qnet(["plan", "--netns", HOST, file, "--json"]);
    assert.equal(plan.status, 0, plan.stderr);
    assert.deepEqual(JSON.parse(plan.stdout).changes, []);
  });

  test("each VM leases from the LAN's router and status is healthy", async () => {
    for (let i = 0; i < 40 && Object.keys(ips).length < 2; i++) {
      const s = JSON.parse(env.qnet(["status", LAB, "--json"]).stdout);
      for (const o of s.objects.filter((x: { kind: string }) => x.kind === "vm")) {
        const a = o.addresses?.[0]?.ipv4?.find((x: string) => x.startsWith("192.168.50."));
        if (a) ips[o.name] = a.split("/")[0];
      }
      if (Object.keys(ips).length < 2) await new Promise((res) => setTimeout(res, 500));
    }
    assert.deepEqual(Object.keys(ips).sort(), ["vm0", "vm1"], "both VMs hold a LAN lease");
    const s = JSON.parse(env.qnet(["status", LAB, "--json"]).stdout);
    assert.equal(
      s.ok,
      true,
      JSON.stringify(s.objects.filter((o: { state: string }) => o.state !== "present")),
    );
  });

  test("the VMs reach the router and each other", () => {
    for (const [vm, target] of [
      ["vm0", "192.168.50.1"],
      ["vm1", "192.168.50.1"],
      ["vm0", ips.vm1!],
    ] as const) {
      const r = env.qnet(["exec", LAB, vm, "--", "ping", "-c1", "-W3", target]);
      assert.equal(r.status, 0, `${vm} -> ${target}: ${r.stdout}${r.stderr}`);
    }
  });

  test("down removes the macvtaps and the VMs: the host namespace is as it was", () => {
    const r = env.qnet(["down", LAB]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(qemuPids(LAB), []);
    assert.deepEqual(snapshot(HOST), before_);
  });
});
