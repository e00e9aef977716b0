// LAN bridging in namespaces: the uplink move loses no ping, down restores exact snapshots, rollback, confirm, Wi-Fi, macvtap.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { execa, execaSync } from "execa";
import type { ExecContext, ExecOptions } from "../../src/engine/context.js";
import { reconcile } from "../../src/engine/engine.js";
import { runUndos } from "../../src/engine/undo.js";
import { UserError } from "../../src/errors.js";
import { Journal } from "../../src/host/journal.js";
import { ProcessRunner } from "../../src/host/runner.js";
import { confirmLab } from "../../src/host/uplink.js";
import { compileTopology } from "../../src/load/compile.js";

type LabContext = Omit<ExecContext, "obs">;

/** The engine's LAN part (uplink moves, their taps, macvtaps), with the options `up` passes. */
async function applyBridgedNetworks(
  ctx: LabContext,
  opts: ExecOptions & { sysfsRoot?: string } = {},
) {
  const { sysfsRoot, ...options } = opts;
  const r = await reconcile(
    { ...ctx, options },
    {
      only: ["module", "uplink", "bridge", "address", "tap", "macvtap"],
      vms: false,
      ...(sysfsRoot ? { observe: { sysfsRoot } } : {}),
    },
  );
  return { changed: r.plan.actions.length > 0, notes: r.notes };
}

/** Replay the lab's journal newest first (what `down` does), keeping it; the number of entries taken back. */
async function undoBridged(ctx: LabContext): Promise<number> {
  const entries = Journal.read(ctx.stateDir).sort((a, b) => b.seq - a.seq);
  const r = await runUndos(entries, { runner: ctx.runner, stateDir: ctx.stateDir });
  if (r.errors.length) throw r.errors[0];
  return r.undone.length;
}

const P = `qnt-upl-${process.pid}`;
const LAN = `${P}-lan`;
const HOST = `${P}-host`;
const temps: string[] = [];
const contexts: LabContext[] = [];

async function ip(...args: string[]): Promise<string> {
  return (await execa("ip", args)).stdout;
}

/** Everything `ip -json` shows of the host namespace: links, addresses, IPv4 and IPv6 routes of all tables. */
async function snapshot(): Promise<string> {
  const parts = [
    await ip("-n", HOST, "-json", "link", "show"),
    await ip("-n", HOST, "-json", "addr", "show"),
    await ip("-n", HOST, "-4", "-json", "route", "show", "table", "all"),
    await ip("-n", HOST, "-6", "-json", "route", "show", "table", "all"),
  ];
  return parts.join("\n");
}

async function waitNoTentative(): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (!(await ip("-n", HOST, "addr", "show")).includes("tentative")) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("addresses stay tentative");
}

function context(yaml: string): LabContext {
  const { lab } = compileTopology(yaml, "test.yaml");
  const stateDir = mkdtempSync(join(tmpdir(), "qnt-upl-state-"));
  temps.push(stateDir);
  const ctx: LabContext = {
    lab,
    stateDir,
    runner: new ProcessRunner(HOST),
    journal: new Journal(stateDir),
    facts: { vhost: false, kvm: true },
    options: {},
    progress: () => {},
  };
  contexts.push(ctx);
  return ctx;
}

const LAB = (extra = "") => `
name: upl${process.pid % 10000}
networks:
  lan:
    type: bridged
    uplink: eth0
    bridge: qnbr0${extra}
vms:
  vm0: { nics: [{ network: lan }] }
`;

/** A 10 ms ping from the host namespace; resolves to [transmitted, received]. */
function pinger(target: string, count: number) {
  const p = execa(
    "ip",
    [
      "netns",
      "exec",
      HOST,
      "busybox",
      "ping",
      ...(target.includes(":") ? ["-6"] : []),
      "-i",
      "0.01",
      "-c",
      String(count),
      target,
    ],
    { reject: false },
  );
  return (async () => {
    const r = await p;
    const m = /(\d+) packets transmitted, (\d+) packets received/.exec(String(r.stdout));
    assert.ok(m, `ping output: ${r.stdout} ${r.stderr}`);
    return [Number(m[1]), Number(m[2])] as const;
  })();
}

async function pingOk(target: string): Promise<boolean> {
  const r = await execa("ip", ["netns", "exec", HOST, "busybox", "ping", "-c1", "-W1", target], {
    reject: false,
  });
  return r.exitCode === 0;
}

let before0 = "";

describe("bridged networks (namespaces)", () => {
  before(async () => {
    await ip("netns", "add", LAN);
    await ip("netns", "add", HOST);
    await ip("-n", LAN, "link", "add", "name", "rbr", "type", "bridge");
    await ip("-n", LAN, "addr", "add", "192.168.50.1/24", "dev", "rbr");
    await ip("-n", LAN, "addr", "add", "fd50::1/64", "dev", "rbr", "nodad");
    await ip("-n", LAN, "link", "set", "dev", "rbr", "up");
    await ip(
      "link",
      "add",
      "name",
      `u${process.pid}`,
      "netns",
      LAN,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      HOST,
    );
    await ip("-n", LAN, "link", "set", "dev", `u${process.pid}`, "master", "rbr", "up");
    await ip("-n", HOST, "link", "set", "dev", "lo", "up");
    await ip("-n", HOST, "link", "set", "dev", "eth0", "up");
    await ip("-n", HOST, "addr", "add", "192.168.50.2/24", "dev", "eth0");
    await ip("-n", HOST, "addr", "add", "fd50::2/64", "dev", "eth0");
    await ip("-n", HOST, "route", "add", "default", "via", "192.168.50.1", "dev", "eth0");
    await ip("-n", HOST, "-6", "route", "add", "default", "via", "fd50::1", "dev", "eth0");
    await ip(
      "-n",
      HOST,
      "route",
      "add",
      "10.99.0.0/16",
      "via",
      "192.168.50.1",
      "dev",
      "eth0",
      "proto",
      "static",
      "metric",
      "50",
    );
    await waitNoTentative();
    assert.ok(await pingOk("192.168.50.1"), "router answers before the move");
    before0 = await snapshot();
  });

  // A failed test must not leave its bridge behind for the next one.
  afterEach(async () => {
    for (const c of contexts.splice(0)) await undoBridged(c).catch(() => {});
  });

  after(async () => {
    await execa("ip", ["netns", "del", HOST], { reject: false });
    await execa("ip", ["netns", "del", LAN], { reject: false });
    for (const t of temps) rmSync(t, { recursive: true, force: true });
  });

  test("the move keeps MAC, addresses and routes, loses no 10 ms ping; down restores the exact snapshots", async () => {
    const ctx = context(LAB());
    const tap = ctx.lab.vms[0]!.nics[0]!.tap!;
    const v4 = pinger("192.168.50.1", 300);
    const v6 = pinger("fd50::1", 300);
    await new Promise((r) => setTimeout(r, 800));
    const res = await applyBridgedNetworks(ctx);
    assert.equal(res.changed, true);
    const [tx4, rx4] = await v4;
    const [tx6, rx6] = await v6;
    console.log(`move: IPv4 ${tx4} sent / ${rx4} received; IPv6 ${tx6} sent / ${rx6} received`);
    assert.equal(rx4, tx4, "no IPv4 ping lost during the move");
    assert.equal(rx6, tx6, "no IPv6 ping lost during the move");

    const links = JSON.parse(await ip("-n", HOST, "-json", "link", "show")) as Record<
      string,
      unknown
    >[];
    const eth0 = links.find((l) => l.ifname === "eth0")!;
    const br = links.find((l) => l.ifname === "qnbr0")!;
    assert.equal(br.address, eth0.address, "bridge has the uplink's MAC");
    assert.equal(eth0.master, "qnbr0");
    assert.equal(br.ifalias, ctx.lab.name && `qnet:${ctx.lab.name}`);
    const t = links.find((l) => l.ifname === tap)!;
    assert.equal(t.master, "qnbr0", "the VM's tap is on the bridge");
    const addrs = await ip("-n", HOST, "addr", "show", "dev", "qnbr0");
    assert.match(addrs, /192\.168\.50\.2\/24/);
    assert.match(addrs, /fd50::2\/64/);
    assert.doesNotMatch(
      await ip("-n", HOST, "addr", "show", "dev", "eth0"),
      /192\.168\.50\.2|fd50::2/,
    );
    assert.match(await ip("-n", HOST, "route", "show", "default"), /via 192\.168\.50\.1 dev qnbr0/);
    assert.match(await ip("-n", HOST, "-6", "route", "show", "default"), /via fd50::1 dev qnbr0/);
    assert.match(
      await ip("-n", HOST, "route", "show", "10.99.0.0/16"),
      /dev qnbr0 proto static metric 50/,
    );
    assert.ok(await pingOk("192.168.50.1"));

    // up again: nothing to do.
    assert.equal((await applyBridgedNetworks(ctx)).changed, false);

    const d4 = pinger("192.168.50.1", 300);
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(await undoBridged(ctx), 2, "the move and the tap");
    const [dtx, drx] = await d4;
    console.log(`down: IPv4 ${dtx} sent / ${drx} received`);
    assert.equal(drx, dtx, "no IPv4 ping lost during down");
    assert.equal(await snapshot(), before0, "ip -json link/addr/route equal the originals");
    assert.equal(await undoBridged(ctx), 2, "undo is idempotent");
    assert.equal(await snapshot(), before0);
  });

  test("a probe that gets no answer rolls back by itself and says why", async () => {
    const ctx = context(LAB("\n    probe: 192.168.50.99"));
    await assert.rejects(applyBridgedNetworks(ctx, { probeTimeoutMs: 1500 }), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /192\.168\.50\.99 did not answer/);
      assert.match(e.message, /rolled back/);
      return true;
    });
    assert.equal(await snapshot(), before0);
    assert.ok(await pingOk("192.168.50.1"));
  });

  test("the router losing its address right after the move: rollback restores the snapshots", async () => {
    const ctx = context(LAB());
    // The router's address goes away as the move starts (progress is reported just before the batch runs).
    let removed = false;
    ctx.progress = (msg) => {
      if (/^moving eth0/.test(msg)) {
        execaSync("ip", ["-n", LAN, "addr", "del", "192.168.50.1/24", "dev", "rbr"]);
        removed = true;
      }
    };
    try {
      await assert.rejects(
        applyBridgedNetworks(ctx, { probeTimeoutMs: 1500 }),
        /192\.168\.50\.1 did not answer.*rolled back/s,
      );
      assert.equal(removed, true);
    } finally {
      execaSync("ip", ["-n", LAN, "addr", "add", "192.168.50.1/24", "dev", "rbr"], {
        reject: false,
      });
    }
    // The router's neighbour entry for the host may have changed state; the host's own view must not.
    assert.equal(await snapshot(), before0);
  });

  test("--confirm: without confirmation the change reverts; with it, it stays", async () => {
    const ctx = context(LAB());
    await assert.rejects(
      applyBridgedNetworks(ctx, { confirmSeconds: 1 }),
      /not confirmed within 1 s: reverted/,
    );
    assert.equal(await snapshot(), before0);

    const ctx2 = context(LAB());
    // Confirmed as a user would: once up says it is waiting for it.
    ctx2.progress = (msg) => {
      if (/keeping the change/.test(msg)) setTimeout(() => confirmLab(ctx2.stateDir), 300);
    };
    const r = await applyBridgedNetworks(ctx2, { confirmSeconds: 10 });
    assert.ok(r.notes.includes("change confirmed"));
    assert.match(await ip("-n", HOST, "route", "show", "default"), /dev qnbr0/);
    await undoBridged(ctx2);
    assert.equal(await snapshot(), before0);

    const ctx3 = context(LAB());
    const r3 = await applyBridgedNetworks(ctx3, {
      confirmSeconds: 10,
      confirmation: Promise.resolve(),
    });
    assert.ok(r3.notes.includes("change confirmed"));
    await undoBridged(ctx3);
    assert.equal(await snapshot(), before0);
  });

  test("a wireless-looking uplink is refused with the reason and touches nothing", async () => {
    const root = mkdtempSync(join(tmpdir(), "qnt-upl-sysfs-"));
    temps.push(root);
    mkdirSync(join(root, "class", "net", "eth0", "phy80211"), { recursive: true });
    const ctx = context(LAB());
    await assert.rejects(applyBridgedNetworks(ctx, { sysfsRoot: root }), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /wireless \(802\.11\).*cannot be bridged/s);
      assert.match(e.message, /use `mode: macvtap`/);
      assert.match(e.message, /nothing was changed/);
      return true;
    });
    assert.equal(await snapshot(), before0);
  });

  test("macvtap: one macvtap per NIC on the uplink, with the NIC's MAC; removed on down", async () => {
    const ctx = context(`
name: mvt${process.pid % 10000}
networks:
  lan: { type: bridged, uplink: eth0, mode: macvtap }
vms:
  vm0: { nics: [{ network: lan }] }
  vm1: { nics: [{ network: lan }] }
`);
    const r = await applyBridgedNetworks(ctx);
    assert.equal(r.changed, true);
    assert.ok(r.notes.some((n) => /host cannot reach the VMs/.test(n)));
    for (const vm of ctx.lab.vms) {
      const nic = vm.nics[0]!;
      const l = (
        JSON.parse(await ip("-n", HOST, "-d", "-json", "link", "show", "dev", nic.tap!)) as {
          linkinfo: { info_kind: string; info_data: Record<string, unknown> };
          address: string;
          ifalias?: string;
          ifindex: number;
        }[]
      )[0]!;
      assert.equal(l.linkinfo.info_kind, "macvtap");
      assert.equal(l.linkinfo.info_data.mode, "bridge");
      assert.equal(l.address, nic.mac);
      assert.equal(l.ifalias, `qnet:${ctx.lab.name}`);
    }
    assert.equal(await undoBridged(ctx), 2, "one link undo per macvtap");
    assert.equal(await snapshot(), before0);
  });
});
