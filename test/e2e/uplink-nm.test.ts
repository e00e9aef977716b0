// The safety of the NetworkManager move, on a real NetworkManager with a static eth0 (profile `lan`): a probe
// that gets no answer rolls back through nmcli by itself; `--confirm` reverts unless `qnet confirm` runs;
// SIGKILL of `up` in the middle of the move, then `down`, gives the original profile back.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { reconcile } from "../../src/engine/engine.js";
import { UserError } from "../../src/errors.js";
import { Journal } from "../../src/host/journal.js";
import { ProcessRunner } from "../../src/host/runner.js";
import { compileTopology } from "../../src/load/compile.js";
import { REPO_ROOT } from "../helpers/golden.js";
import { CLI } from "../helpers/topology.js";
import { pingFrom, settled, startRouter, stopRouter } from "./helpers/lan.js";
import { addNetns, delNetns, qnetEnv } from "./helpers/netns.js";
import {
  addrSnapshot,
  type NetworkManagerInstance,
  startNetworkManager,
} from "./helpers/network-manager.js";

const P = `qnt-nmupl-${process.pid}`;
const LAN = `${P}-lan`;
const HOST = `${P}-host`;
const EXAMPLE = join(REPO_ROOT, "examples", "lan-bridge.yaml");

describe("NetworkManager uplink: probe rollback, --confirm, SIGKILL during the move", () => {
  const env = qnetEnv();
  const dir = mkdtempSync(join(tmpdir(), "qnt-nmupl-"));
  let nm: NetworkManagerInstance;
  let profiles0 = "";
  let addrs0: unknown;

  const eth0Profile = () =>
    nm
      .nmcli(["-t", "-f", "DEVICE,CONNECTION", "device"])
      .split("\n")
      .find((l) => l.startsWith("eth0:"))
      ?.slice(5);
  const assertAsBefore = async (what: string) => {
    await settled(HOST);
    assert.equal(eth0Profile(), "lan", `${what}: eth0 is on its profile lan again`);
    assert.equal(nm.nmcli(["-t", "connection", "show"]), profiles0, `${what}: nmcli -t c show`);
    assert.deepEqual(addrSnapshot(HOST), addrs0, `${what}: ip -json addr`);
    assert.ok(pingFrom(HOST, "192.168.50.1"), `${what}: the router answers`);
  };

  /** `qnet up` as a child; `onLine` sees its stderr line by line (and may kill it). */
  const upChild = (args: string[], onLine: (line: string, kill: () => void) => void) => {
    const child = spawn(process.execPath, [CLI, "up", "--state-dir", env.stateRoot, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    let buf = "";
    child.stderr.on("data", (d) => {
      err += d;
      buf += d;
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) onLine(l, () => child.kill("SIGKILL"));
    });
    return new Promise<{ code: number | null; signal: string | null; stderr: string }>((res) =>
      child.on("exit", (code, signal) => res({ code, signal, stderr: err })),
    );
  };

  before(async () => {
    addNetns(LAN);
    addNetns(HOST);
    startRouter(LAN, HOST, dir, { configureHost: false });
    nm = await startNetworkManager(HOST, { mode: "static" });
    await settled(HOST);
    profiles0 = nm.nmcli(["-t", "connection", "show"]);
    addrs0 = addrSnapshot(HOST);
  });

  afterEach(() => {
    env.qnet(["down", "office"]);
  });

  after(async () => {
    await nm?.stop();
    stopRouter(dir);
    delNetns(HOST);
    delNetns(LAN);
    env.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a probe that gets no answer rolls back through NetworkManager by itself", async () => {
    const yaml = `
name: office
networks:
  lan: { type: bridged, uplink: eth0, bridge: br0, probe: 192.168.50.99 }
vms:
  vm0: { nics: [{ network: lan }] }
`;
    const stateDir = mkdtempSync(join(tmpdir(), "qnt-nmupl-state-"));
    writeFileSync(join(dir, "probe.yaml"), yaml);
    try {
      const ctx = {
        lab: compileTopology(yaml, "probe.yaml").lab,
        stateDir,
        runner: new ProcessRunner(HOST),
        journal: new Journal(stateDir),
        facts: { vhost: false, kvm: false },
        options: { probeTimeoutMs: 2000 },
        progress: () => {},
      };
      await assert.rejects(reconcile(ctx, { only: ["uplink"], vms: false }), (e: unknown) => {
        assert.ok(e instanceof UserError, String(e));
        assert.match(
          e.message,
          /192\.168\.50\.99 did not answer a ping within 2 s; the move was rolled back/,
        );
        return true;
      });
      // Nothing but the move's own rollback ran: the host is as it was.
      await assertAsBefore("after the probe failed");
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test("--confirm 5 without `qnet confirm` reverts the move", async () => {
    const t0 = Date.now();
    const r = env.qnet(["up", "--no-vms", "--confirm", "5", "--netns", HOST, EXAMPLE]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /not confirmed within 5 s: reverted eth0 on br0/);
    assert.ok(Date.now() - t0 >= 5000);
    await assertAsBefore("after an unconfirmed --confirm 5");
  });

  test("--confirm with `qnet confirm` keeps the move; down gives it back", async () => {
    let confirmed: ReturnType<typeof env.qnet> | null = null;
    const r = await upChild(["--no-vms", "--confirm", "30", "--netns", HOST, EXAMPLE], (line) => {
      if (/keeping the change/.test(line) && !confirmed)
        confirmed = env.qnet(["confirm", "office"]);
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(confirmed!.status, 0);
    assert.match(r.stderr, /change confirmed/);
    assert.equal(eth0Profile(), "qnet-office-eth0");
    assert.equal(env.qnet(["down", "office"]).status, 0);
    await assertAsBefore("after down");
  });

  for (const at of [
    "NetworkManager: activating qnet-office-br0",
    "NetworkManager: activating qnet-office-eth0",
  ]) {
    test(`SIGKILL of up at "${at}", then down: the original profile is active again`, async () => {
      let killed = false;
      const r = await upChild(["--no-vms", "--netns", HOST, EXAMPLE], (line, kill) => {
        if (line.includes(at) && !killed) {
          killed = true;
          kill();
        }
      });
      assert.equal(r.signal, "SIGKILL", r.stderr);
      const left = nm.nmcli(["-t", "connection", "show"]);
      console.log(`killed at "${at}": ${left.replace(/\n/g, " ")}`);
      assert.match(left, /qnet-office-br0/, "the kill left the move half done");
      const d = env.qnet(["down", "office"]);
      assert.equal(d.status, 0, d.stdout + d.stderr);
      await assertAsBefore(`after a kill at "${at}"`);
    });
  }

  test("an uplink NetworkManager does not manage moves with iproute2, and its bridge is kept out of NetworkManager", async () => {
    nm.nmcli(["device", "set", "eth0", "managed", "no"]);
    try {
      const plan = env.qnet(["plan", "--json", "--netns", HOST, EXAMPLE]);
      assert.equal(plan.status, 0, plan.stderr);
      assert.match(plan.stdout, /create bridge br0 with eth0's MAC and MTU/);
      const r = env.qnet(["up", "--no-vms", "--netns", HOST, EXAMPLE]);
      assert.equal(r.status, 0, r.stderr);
      const states = nm.nmcli(["-t", "-f", "DEVICE,STATE", "device"]);
      assert.match(states, /^br0:unmanaged$/m, "NetworkManager leaves qnet's bridge alone");
      assert.doesNotMatch(nm.nmcli(["-t", "connection", "show"]), /qnet-office/);
      const st = env.qnet(["status", "office"]);
      assert.equal(st.status, 0, st.stdout + st.stderr);
      const again = env.qnet(["plan", "--json", "--netns", HOST, EXAMPLE]);
      assert.deepEqual(
        JSON.parse(again.stdout).changes.filter((c: { kind: string }) => c.kind !== "vm"),
        [],
      );
      assert.equal(env.qnet(["down", "office"]).status, 0);
    } finally {
      nm.nmcli(["device", "set", "eth0", "managed", "yes"]);
      nm.nmcli(["connection", "up", "lan"]);
    }
    await assertAsBefore("after the iproute2 move and down");
  });
});
