// The uplink move's batch lines and their inverse, from a snapshot; nmcli argv; manager detection from fake trees.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { emptyObservation, type UplinkSnapshot } from "../../src/facts/types.js";
import { RecordingRunner } from "../../src/host/runner.js";
import {
  detectManager,
  dhcpClients,
  isWireless,
  networkdLink,
} from "../../src/host/uplink-manager.js";
import { planLab } from "../../src/kinds/index.js";
import { compileTopology } from "../../src/load/compile.js";
import { NM_COPIED } from "../../src/plan/uplink-nm.js";
import { neighCopyLines, planUplinkMove } from "../../src/plan/uplink-plan.js";
import { env, lo } from "./host-fixtures.js";

const F = 4294967295;
const snap: UplinkSnapshot = {
  name: "eth0",
  ifindex: 2,
  mac: "52:54:00:aa:bb:cc",
  mtu: 9000,
  up: true,
  master: null,
  addrs: [
    {
      family: "inet",
      local: "192.168.50.2",
      prefixlen: 24,
      scope: "global",
      label: "eth0",
      dynamic: true,
      valid_life_time: 3000,
      preferred_life_time: 3000,
    },
    {
      family: "inet",
      local: "192.168.50.9",
      prefixlen: 24,
      scope: "global",
      label: "eth0:1",
      secondary: true,
      valid_life_time: F,
      preferred_life_time: F,
    },
    {
      family: "inet6",
      local: "fd50::2",
      prefixlen: 64,
      scope: "global",
      valid_life_time: F,
      preferred_life_time: F,
    },
    {
      family: "inet6",
      local: "fe80::1",
      prefixlen: 64,
      scope: "link",
      valid_life_time: F,
      preferred_life_time: F,
    },
  ],
  routes: [
    {
      family: "inet",
      dst: "default",
      gateway: "192.168.50.1",
      protocol: "dhcp",
      prefsrc: "192.168.50.2",
      metric: 100,
    },
    {
      family: "inet",
      dst: "192.168.50.0/24",
      protocol: "kernel",
      scope: "link",
      prefsrc: "192.168.50.2",
    },
    { family: "inet", dst: "10.0.0.0/8", gateway: "192.168.50.254", table: "100" },
    { family: "inet", type: "local", dst: "192.168.50.2", table: "local", protocol: "kernel" },
    { family: "inet6", dst: "default", gateway: "fd50::1", metric: 1024, pref: "medium" },
  ],
};

test("the move: bridge with the uplink's MAC and MTU, copies before enslaving, routes replaced, uplink addresses last", () => {
  const p = planUplinkMove(snap, { bridge: "br0", alias: "qnet:office" });
  assert.deepEqual(p.apply, [
    "link add name br0 address 52:54:00:aa:bb:cc mtu 9000 type bridge stp_state 0 forward_delay 0",
    "link set dev br0 alias qnet:office",
    "addr add 192.168.50.2/24 dev br0 valid_lft 3000 preferred_lft 3000",
    "addr add 192.168.50.9/24 dev br0 label br0:1",
    "addr add fd50::2/64 dev br0 nodad",
    "link set dev br0 up",
    "link set dev eth0 master br0",
    "route replace 0.0.0.0/0 via 192.168.50.1 dev br0 proto dhcp src 192.168.50.2 metric 100",
    "route replace 10.0.0.0/8 via 192.168.50.254 dev br0 table 100",
    "route replace ::/0 via fd50::1 dev br0 metric 1024",
    "addr del fd50::2/64 dev eth0",
    "addr del 192.168.50.9/24 dev eth0",
    "addr del 192.168.50.2/24 dev eth0",
  ]);
  assert.deepEqual(p.inverse, [
    "addr add 192.168.50.2/24 dev eth0 valid_lft 3000 preferred_lft 3000",
    "addr add 192.168.50.9/24 dev eth0 label eth0:1",
    "addr add fd50::2/64 dev eth0",
    "route replace 0.0.0.0/0 via 192.168.50.1 dev eth0 proto dhcp src 192.168.50.2 metric 100",
    "route replace 10.0.0.0/8 via 192.168.50.254 dev eth0 table 100",
    "route replace ::/0 via fd50::1 dev eth0 metric 1024",
    "addr del fd50::2/64 dev br0",
    "addr del 192.168.50.9/24 dev br0",
    "addr del 192.168.50.2/24 dev br0",
    "link set dev eth0 nomaster",
    "link del dev br0",
  ]);
  assert.deepEqual(p.moved.addrs, ["192.168.50.2/24", "192.168.50.9/24", "fd50::2/64"]);
});

test("hostile or odd names never reach a batch line; multipath routes are refused", () => {
  assert.throws(() => planUplinkMove(snap, { bridge: "br0\nlink del dev eth1", alias: "qnet:x" }));
  assert.throws(
    () =>
      planUplinkMove(
        { ...snap, routes: [{ family: "inet", dst: "default", nexthops: [] }] },
        { bridge: "br0", alias: "qnet:x" },
      ),
    /multipath/,
  );
  assert.throws(
    () => planUplinkMove({ ...snap, master: "bond0" }, { bridge: "br0", alias: "qnet:x" }),
    /enslaved to bond0/,
  );
});

test("neighbour copies skip unresolved entries; macvtap lines carry the NIC MAC", () => {
  assert.deepEqual(
    neighCopyLines(
      [
        { dst: "192.168.50.1", lladdr: "02:00:00:00:00:01", state: ["REACHABLE"] },
        { dst: "192.168.50.7", state: ["FAILED"] },
      ],
      "eth0",
    ),
    ["neigh replace 192.168.50.1 lladdr 02:00:00:00:00:01 dev eth0 nud stale"],
  );
});

test("macvtaps: one per NIC on the uplink with its MAC, a link undo, and the host limitation noted", () => {
  const { lab } = compileTopology(
    "name: o\nnetworks:\n  lan: { type: bridged, uplink: eth0, mode: macvtap }\nvms:\n  vm0: { nics: [{ network: lan, mac: '52:54:00:00:00:01' }] }\n",
    "t.yaml",
  );
  const tap = lab.vms[0]!.nics[0]!.tap!;
  const eth0 = { ...lo, name: "eth0", index: 2, addrs: [] };
  const p = planLab(
    env(lab),
    { ...emptyObservation(null, true), links: [lo, eth0] },
    undefined,
    new Set(["macvtap"]),
  );
  assert.equal(p.actions.length, 1);
  assert.deepEqual(p.actions[0]!.batch, [
    `link add link eth0 name ${tap} address 52:54:00:00:00:01 type macvtap mode bridge`,
    `link set dev ${tap} alias qnet:o`,
    `link set dev ${tap} up`,
  ]);
  assert.deepEqual(p.actions[0]!.undo, { kind: "link", name: tap, alias: "qnet:o" });
  assert.match(p.notes[0]!, /host cannot reach the VMs/);
  // Without the uplink nothing may be made.
  const gone = planLab(
    env(lab),
    { ...emptyObservation(null, true), links: [lo] },
    undefined,
    new Set(["macvtap"]),
  );
  assert.match(gone.problems[0]!, /uplink eth0 does not exist/);
});

const tmp = mkdtempSync(join(tmpdir(), "qnt-uplink-unit-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("detection: NetworkManager from its devices, networkd from its state file, DHCP clients from /proc, Wi-Fi from sysfs", async () => {
  const values = NM_COPIED.map((f) =>
    f === "ipv4.method" ? "manual" : f === "ipv4.addresses" ? "192.168.50.2/24" : "",
  );
  const nm = new RecordingRunner(null, (argv) =>
    argv.includes("-g") ? { stdout: `${values.join("\n")}\n` } : {},
  );
  const ctx = {
    proc: { pid: 42, root: "/", prefix: [] },
    facts: {
      pid: 42,
      running: true,
      version: "1.42.4",
      devices: [
        { device: "lo", type: "loopback", state: "unmanaged", profile: null },
        {
          device: "eth0",
          type: "ethernet",
          state: "connected",
          profile: { id: "Wired connection 1", uuid: "u-1" },
        },
      ],
      connections: [],
      qnetConf: new Map(),
      config: null,
    },
  };
  const m = await detectManager(nm, snap, null, { procRoot: join(tmp, "none") }, ctx);
  assert.equal(m.kind, "nmcli");
  assert.deepEqual(m.kind === "nmcli" && m.profile, { id: "Wired connection 1", uuid: "u-1" });
  assert.equal(m.kind === "nmcli" && m.settings?.["ipv4.addresses"], "192.168.50.2/24");
  assert.deepEqual(nm.calls[0]!.argv.slice(-4), ["connection", "show", "uuid", "u-1"]);
  // NetworkManager in the namespace that does not answer: qnet must not go behind its back.
  const silent = { ...ctx, facts: { ...ctx.facts, running: false } };
  assert.deepEqual(await detectManager(nm, snap, null, {}, silent), {
    kind: "nmcli",
    state: "unreachable",
    profile: null,
    settings: null,
  });
  const noNm = new RecordingRunner(null, () => ({ exitCode: 127 }));
  mkdirSync(join(tmp, "run", "systemd", "netif", "links"), { recursive: true });
  writeFileSync(
    join(tmp, "run", "systemd", "netif", "links", "2"),
    "ADMIN_STATE=configured\nNETWORK_FILE=/etc/systemd/network/eth0.network\n",
  );
  assert.deepEqual(networkdLink(2, { runRoot: join(tmp, "run") }), {
    networkFile: "/etc/systemd/network/eth0.network",
  });
  assert.equal(
    (await detectManager(noNm, snap, null, { runRoot: join(tmp, "run") })).kind,
    "networkd",
  );
  assert.equal(
    (
      await detectManager(noNm, snap, "iproute2", {
        runRoot: join(tmp, "run"),
        procRoot: join(tmp, "none"),
      })
    ).kind,
    "dhcp",
    "forced: networkd skipped; the dynamic address is still reported",
  );
  mkdirSync(join(tmp, "proc", "123"), { recursive: true });
  writeFileSync(join(tmp, "proc", "123", "cmdline"), "/sbin/dhclient\0-4\0eth0\0");
  mkdirSync(join(tmp, "proc", "124"), { recursive: true });
  writeFileSync(join(tmp, "proc", "124", "cmdline"), "/sbin/dhclient\0eth1\0");
  assert.deepEqual(dhcpClients("eth0", { procRoot: join(tmp, "proc") }), [
    { pid: 123, argv: ["/sbin/dhclient", "-4", "eth0"] },
  ]);
  mkdirSync(join(tmp, "sys", "class", "net", "wlan0", "wireless"), { recursive: true });
  assert.equal(await isWireless(noNm, "wlan0", { sysfsRoot: join(tmp, "sys") }), true);
  assert.equal(await isWireless(noNm, "eth0", { sysfsRoot: join(tmp, "sys") }), false);
});

test("an address with noprefixroute (NetworkManager's): its proto kernel prefix route moves with it", () => {
  const nmSnap: UplinkSnapshot = {
    ...snap,
    addrs: [
      {
        family: "inet",
        local: "192.168.50.2",
        prefixlen: 24,
        scope: "global",
        noprefixroute: true,
      },
      { family: "inet6", local: "fd50::2", prefixlen: 64, scope: "global", noprefixroute: true },
      { family: "inet6", local: "fe80::1", prefixlen: 64, scope: "link", noprefixroute: true },
    ],
    routes: [
      { family: "inet", dst: "default", gateway: "192.168.50.1", protocol: "static", metric: 100 },
      {
        family: "inet",
        dst: "192.168.50.0/24",
        protocol: "kernel",
        scope: "link",
        prefsrc: "192.168.50.2",
        metric: 100,
      },
      { family: "inet6", dst: "fd50::/64", protocol: "kernel", metric: 100 },
      { family: "inet6", dst: "fe80::/64", protocol: "kernel", metric: 1024 },
    ],
  };
  const p = planUplinkMove(nmSnap, { bridge: "br0", alias: "qnet:o" });
  const routes = p.apply.filter((l) => l.startsWith("route replace"));
  assert.deepEqual(routes, [
    "route replace 192.168.50.0/24 dev br0 proto kernel scope link src 192.168.50.2 metric 100",
    "route replace fd50::/64 dev br0 proto kernel metric 100",
    "route replace 0.0.0.0/0 via 192.168.50.1 dev br0 proto static metric 100",
  ]);
  // Without noprefixroute the kernel makes the prefix route itself: it is not moved.
  const plain = planUplinkMove(
    { ...nmSnap, addrs: nmSnap.addrs.map(({ noprefixroute, ...a }) => a) },
    { bridge: "br0", alias: "qnet:o" },
  );
  assert.deepEqual(
    plain.apply.filter((l) => l.startsWith("route replace")),
    ["route replace 0.0.0.0/0 via 192.168.50.1 dev br0 proto static metric 100"],
  );
});
