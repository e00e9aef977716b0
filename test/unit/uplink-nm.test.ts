// The NetworkManager move, pure: profiles and their marks, copied settings, the pinned DHCP lease; the uplink and
// nm-unmanaged kinds against observations of a NetworkManager host; nmcli output parsers; the conf.d golden.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  emptyObservation,
  type NmFacts,
  type NmUplink,
  type Observation,
  type UplinkSnapshot,
} from "../../src/facts/types.js";
import { parseNmConnections, parseNmDevices } from "../../src/host/network-manager.js";
import { planLab } from "../../src/kinds/index.js";
import { tapsOf } from "../../src/kinds/tap.js";
import type { Action } from "../../src/kinds/types.js";
import type { UplinkPayload } from "../../src/kinds/uplink.js";
import {
  isQnetProfile,
  markKeyfile,
  NM_COPIED,
  nmProfile,
  parseNmcliValues,
  planNmMove,
} from "../../src/plan/uplink-nm.js";
import { renderNmUnmanagedConf } from "../../src/render/nm-conf.js";
import { assertGolden } from "../helpers/golden.js";
import { env, exampleLab, lo } from "./host-fixtures.js";

const snapStatic: UplinkSnapshot = {
  name: "eth0",
  ifindex: 2,
  mac: "52:54:00:aa:bb:cc",
  mtu: 1500,
  up: true,
  master: null,
  addrs: [
    { family: "inet", local: "192.168.50.2", prefixlen: 24, scope: "global", noprefixroute: true },
  ],
  routes: [
    { family: "inet", dst: "default", gateway: "192.168.50.1", protocol: "static", metric: 100 },
    { family: "inet", dst: "192.168.50.0/24", protocol: "kernel", scope: "link", metric: 100 },
  ],
};

const snapDhcp: UplinkSnapshot = {
  ...snapStatic,
  addrs: [
    {
      family: "inet",
      local: "192.168.50.150",
      prefixlen: 24,
      scope: "global",
      dynamic: true,
      noprefixroute: true,
      valid_life_time: 3500,
      preferred_life_time: 3500,
    },
    { family: "inet6", local: "fe80::1", prefixlen: 64, scope: "link" },
  ],
  routes: [
    { family: "inet", dst: "default", gateway: "192.168.50.1", protocol: "dhcp", metric: 100 },
  ],
};

const settings = (over: Record<string, string>): Record<string, string> => {
  const s = Object.fromEntries(NM_COPIED.map((f) => [f, ""]));
  return { ...s, "ipv4.route-metric": "-1", "ipv6.route-metric": "-1", ...over };
};

const lanProfile = { id: "lan", uuid: "d7f1dc3d-bb0f-4b53-bd45-3dcd6406bf35" };
const held = (s: Record<string, string>, profile = lanProfile): NmUplink => ({
  kind: "nmcli",
  state: "connected",
  profile,
  settings: s,
});

test("qnet's profiles: named qnet-<lab>-<interface>, with a UUID derived from lab, role and interface", () => {
  const b = nmProfile("office", "bridge", "br0");
  assert.equal(b.id, "qnet-office-br0");
  assert.deepEqual(nmProfile("office", "bridge", "br0"), b, "the same every time");
  assert.notEqual(nmProfile("office", "port", "br0").uuid, b.uuid);
  assert.notEqual(nmProfile("office2", "bridge", "br0").uuid, b.uuid);
  assert.match(b.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(isQnetProfile("office", b, "bridge"), true);
  assert.equal(isQnetProfile("office", { ...b, id: "br0" }, "bridge"), false, "renamed");
  assert.equal(isQnetProfile("office", { ...b, uuid: lanProfile.uuid }, "bridge"), false);
  assert.equal(isQnetProfile("other", b, "bridge"), false);
});

test("static uplink: the bridge profile copies the profile's settings, the effective metric, MAC and MTU", () => {
  const p = planNmMove({
    lab: "office",
    network: "lan",
    snapshot: snapStatic,
    bridge: "br0",
    nm: held(
      settings({
        "ipv4.method": "manual",
        "ipv4.addresses": "192.168.50.2/24",
        "ipv4.gateway": "192.168.50.1",
        "ipv4.dns": "192.168.50.1",
        "ipv6.method": "disabled",
      }),
    ),
    stale: [],
  });
  const br = nmProfile("office", "bridge", "br0");
  const port = nmProfile("office", "port", "eth0");
  assert.deepEqual(p.addBridge, [
    "connection",
    "add",
    "type",
    "bridge",
    "con-name",
    "qnet-office-br0",
    "ifname",
    "br0",
    "save",
    "no",
    "connection.uuid",
    br.uuid,
    "connection.autoconnect",
    "no",
    "bridge.stp",
    "no",
    "bridge.forward-delay",
    "0",
    "ethernet.cloned-mac-address",
    "52:54:00:aa:bb:cc",
    "ethernet.mtu",
    "1500",
    "ipv4.method",
    "manual",
    "ipv4.addresses",
    "192.168.50.2/24",
    "ipv4.gateway",
    "192.168.50.1",
    // -1 would give the bridge NetworkManager's bridge metric (425): the uplink's 100 is kept.
    "ipv4.route-metric",
    "100",
    "ipv4.dns",
    "192.168.50.1",
    "ipv6.method",
    "disabled",
    "ipv6.route-metric",
    "-1",
  ]);
  assert.deepEqual(p.addPort, [
    "connection",
    "add",
    "type",
    "ethernet",
    "con-name",
    "qnet-office-eth0",
    "ifname",
    "eth0",
    "save",
    "no",
    "connection.uuid",
    port.uuid,
    "connection.autoconnect",
    "no",
    "slave-type",
    "bridge",
    "master",
    br.uuid,
    "ethernet.cloned-mac-address",
    "52:54:00:aa:bb:cc",
    "ethernet.mtu",
    "1500",
  ]);
  assert.deepEqual(p.bridgeAddrs, ["192.168.50.2/24"]);
  assert.equal(p.pinned, null);
  assert.equal(p.unpin, null);
  assert.deepEqual(p.original, lanProfile);
  assert.deepEqual(p.marks.bridge.user, {
    "qnet.lab": "office",
    "qnet.network": "lan",
    "qnet.role": "bridge",
    "qnet.uplink": "eth0",
    "qnet.bridge": "br0",
    "qnet.original": lanProfile.uuid,
  });
  assert.match(
    p.marks.bridge.comment.join("\n"),
    /profile "lan" .*which `qnet down office` activates/,
  );
});

test("DHCP uplink: the lease and gateway are pinned on the bridge, and taken off once it has its own", () => {
  const wired = { id: "Wired connection 1", uuid: "2f98ee41-19e9-35d2-952c-986a0950def1" };
  const p = planNmMove({
    lab: "office",
    network: "lan",
    snapshot: snapDhcp,
    bridge: "br0",
    nm: held(settings({ "ipv4.method": "auto", "ipv6.method": "auto" }), wired),
    stale: [],
  });
  const at = (k: string) => p.addBridge[p.addBridge.indexOf(k) + 1];
  assert.equal(at("ipv4.method"), "auto");
  assert.equal(at("ipv4.addresses"), "192.168.50.150/24");
  assert.equal(at("ipv4.gateway"), "192.168.50.1");
  assert.equal(at("ipv4.route-metric"), "100");
  assert.deepEqual(p.pinned, { addresses: ["192.168.50.150/24"], gateway: "192.168.50.1" });
  assert.deepEqual(p.bridgeAddrs, ["192.168.50.150/24"]);
  assert.deepEqual(p.unpin, ["device", "modify", "br0", "ipv4.addresses", "", "ipv4.gateway", ""]);
  assert.match(
    p.marks.bridge.comment.join("\n"),
    /192\.168\.50\.150\/24 and gateway 192\.168\.50\.1 pinned/,
  );
  // never-default: no gateway pinned.
  const q = planNmMove({
    lab: "office",
    network: "lan",
    snapshot: snapDhcp,
    bridge: "br0",
    nm: held(settings({ "ipv4.method": "auto", "ipv4.never-default": "yes" }), wired),
    stale: [],
  });
  assert.deepEqual(q.pinned, { addresses: ["192.168.50.150/24"], gateway: null });
});

test("an uplink without an active profile: the bridge gets no IP settings", () => {
  const p = planNmMove({
    lab: "office",
    network: "lan",
    snapshot: { ...snapStatic, addrs: [], routes: [] },
    bridge: "br0",
    nm: { kind: "nmcli", state: "disconnected", profile: null, settings: null },
    stale: [],
  });
  const at = (k: string) => p.addBridge[p.addBridge.indexOf(k) + 1];
  assert.equal(at("ipv4.method"), "disabled");
  assert.equal(at("ipv6.method"), "disabled");
  assert.equal(p.original, null);
  assert.equal(p.marks.bridge.user["qnet.original"], undefined);
});

test("keyfile marks: a comment on top and [user] data, idempotent; unsafe values refused", () => {
  const mark = { comment: ["qnet: one", "qnet: two\nthree"], user: { "qnet.lab": "office" } };
  const file = "[connection]\nid=qnet-office-br0\n\n[ipv4]\nmethod=auto\n\n[proxy]\n";
  const once = markKeyfile(file, mark);
  assert.equal(
    once,
    "# qnet: one\n# qnet: two three\n[connection]\nid=qnet-office-br0\n\n[ipv4]\nmethod=auto\n\n[proxy]\n\n[user]\nqnet.lab=office\n",
  );
  assert.equal(markKeyfile(once, mark), once, "marking twice changes nothing");
  const withUser = markKeyfile("[connection]\nid=x\n[user]\nother.key=1\nqnet.lab=old\n", mark);
  assert.equal(
    withUser,
    "# qnet: one\n# qnet: two three\n[connection]\nid=x\n[user]\nqnet.lab=office\nother.key=1\n",
  );
  assert.throws(() => markKeyfile(file, { comment: [], user: { "qnet.lab": "a\nb" } }), /unsafe/);
});

test("nmcli output: -g values unescaped; terse device and connection lists", () => {
  assert.deepEqual(parseNmcliValues("manual\nfd50\\:\\:2/64\n\n", ["a", "b", "c", "d"]), {
    a: "manual",
    b: "fd50::2/64",
    c: "",
    d: "",
  });
  assert.deepEqual(
    parseNmDevices(
      "br0:bridge:connected:8258e1a5-2c8c-56d2-93e3-cb8000795eb3:qnet-office-br0\nqntap-1:tun:unmanaged::\nx\\:y:ethernet:disconnected::\n",
    ),
    [
      {
        device: "br0",
        type: "bridge",
        state: "connected",
        profile: { id: "qnet-office-br0", uuid: "8258e1a5-2c8c-56d2-93e3-cb8000795eb3" },
      },
      { device: "qntap-1", type: "tun", state: "unmanaged", profile: null },
      { device: "x:y", type: "ethernet", state: "disconnected", profile: null },
    ],
  );
  assert.deepEqual(
    parseNmConnections(
      "lan:d7f1dc3d-bb0f-4b53-bd45-3dcd6406bf35:802-3-ethernet::/etc/NetworkManager/system-connections/lan.nmconnection\n",
    ),
    [
      {
        id: "lan",
        uuid: "d7f1dc3d-bb0f-4b53-bd45-3dcd6406bf35",
        type: "802-3-ethernet",
        device: null,
        filename: "/etc/NetworkManager/system-connections/lan.nmconnection",
      },
    ],
  );
});

test("golden: the conf.d file that keeps NetworkManager off a lab's interfaces", () => {
  const lab = exampleLab("lan-bridge.yaml");
  assertGolden(
    "lan-bridge.nm-unmanaged.conf",
    renderNmUnmanagedConf(
      lab.name,
      tapsOf(lab).map((t) => t.name),
    ),
  );
  assert.throws(() => renderNmUnmanagedConf("office", ["bad name"]), /interface/);
});

// ---- the kinds against observations of a NetworkManager host ----------------------------------------------

const lab = exampleLab("lan-bridge.yaml");
const tapNames = tapsOf(lab).map((t) => t.name);
const brP = nmProfile("office", "bridge", "br0");
const portP = nmProfile("office", "port", "eth0");

function nmFacts(over: Partial<NmFacts> = {}): NmFacts {
  return {
    pid: 77,
    running: true,
    version: "1.42.4",
    devices: [{ device: "eth0", type: "ethernet", state: "connected", profile: lanProfile }],
    connections: [{ ...lanProfile, type: "802-3-ethernet", device: "eth0", filename: "" }],
    qnetConf: new Map(),
    config: null,
    ...over,
  };
}

function obsWith(
  nm: NmFacts | null,
  manager: NmUplink | { kind: "none" },
  snap = snapStatic,
): Observation {
  return {
    ...emptyObservation(null, true),
    links: [lo],
    nm,
    uplinks: new Map([["eth0", { snapshot: snap, wireless: false, manager }]]),
  };
}

const KINDS = new Set(["uplink", "nm-unmanaged"] as const);
const staticSettings = settings({
  "ipv4.method": "manual",
  "ipv4.addresses": "192.168.50.2/24",
  "ipv4.gateway": "192.168.50.1",
  "ipv6.method": "disabled",
});

test("kinds: a NetworkManager uplink plans the nmcli move (undo journaled) and the conf.d file", () => {
  const p = planLab(env(lab), obsWith(nmFacts(), held(staticSettings)), undefined, KINDS);
  assert.deepEqual(p.problems, []);
  assert.deepEqual(
    p.verdicts.map((v) => [v.kind, v.name, v.state]),
    [
      ["nm-unmanaged", "qnet-office.conf", "missing"],
      ["uplink", "br0", "missing"],
    ],
  );
  const move = p.actions[1] as Action<UplinkPayload>;
  assert.match(move.what, /through NetworkManager: profile qnet-office-br0 \(STP off/);
  assert.deepEqual(move.undo, {
    kind: "uplink-nm",
    lab: "office",
    uplink: "eth0",
    bridge: "br0",
    original: lanProfile,
    profiles: [portP, brP],
    snapshot: snapStatic,
  });
  assert.equal(move.payload.backend, "nmcli");
  const conf = p.actions[0]!;
  assert.deepEqual(conf.undo, { kind: "nm-conf", lab: "office", file: "qnet-office.conf" });
  assert.deepEqual((conf.payload as { devices: string[] }).devices, [...tapNames].sort());
});

test("kinds: qnet's profiles active and eth0 a port of br0: present, nothing to do", () => {
  const nm = nmFacts({
    devices: [
      { device: "eth0", type: "ethernet", state: "connected", profile: portP },
      { device: "br0", type: "bridge", state: "connected", profile: brP },
      ...tapNames.map((t) => ({ device: t, type: "tun", state: "unmanaged", profile: null })),
    ],
    qnetConf: new Map([["qnet-office.conf", renderNmUnmanagedConf("office", tapNames)]]),
  });
  const p = planLab(
    env(lab),
    obsWith(nm, held(staticSettings, portP), { ...snapStatic, master: "br0", addrs: [] }),
    undefined,
    KINDS,
  );
  assert.deepEqual(p.actions, []);
  assert.deepEqual(
    p.verdicts.map((v) => v.state),
    ["present", "present"],
  );
  assert.match(p.verdicts[1]!.detail, /NetworkManager: qnet-office-br0, qnet-office-eth0/);
  // A tap NetworkManager manages again is taken back.
  const managed = {
    ...nm,
    devices: nm.devices.map((d) =>
      d.device === tapNames[0] ? { ...d, state: "disconnected" } : d,
    ),
  };
  const q = planLab(
    env(lab),
    obsWith(managed, held(staticSettings, portP), { ...snapStatic, master: "br0" }),
    undefined,
    KINDS,
  );
  assert.deepEqual(
    q.actions.map((a) => a.what),
    [`nmcli device set ${tapNames[0]} managed no`],
  );
  assert.equal(q.verdicts[0]!.state, "drifted");
});

test("kinds: refusals name the reason and change nothing", () => {
  const cases: [string, Observation, RegExp][] = [
    [
      "a profile with qnet's name that qnet did not make",
      obsWith(
        nmFacts({
          connections: [
            { ...lanProfile, type: "802-3-ethernet", device: "eth0", filename: "" },
            {
              id: "qnet-office-br0",
              uuid: lanProfile.uuid.replace("d", "e"),
              type: "bridge",
              device: null,
              filename: "",
            },
          ],
        }),
        held(staticSettings),
      ),
      /profile named qnet-office-br0 .* exists that qnet did not make/,
    ],
    [
      "NetworkManager that does not answer",
      obsWith(nmFacts({ running: false }), {
        kind: "nmcli",
        state: "unreachable",
        profile: null,
        settings: null,
      }),
      /nmcli got no answer/,
    ],
    [
      "an uplink configured outside NetworkManager",
      obsWith(nmFacts(), {
        kind: "nmcli",
        state: "connected (externally)",
        profile: { id: "eth0", uuid: "x" },
        settings: null,
      }),
      /configured outside NetworkManager/,
    ],
    [
      "qnet's profile renamed by hand",
      obsWith(
        nmFacts({
          connections: [
            { ...lanProfile, type: "802-3-ethernet", device: "eth0", filename: "" },
            { id: "my-bridge", uuid: brP.uuid, type: "bridge", device: null, filename: "" },
          ],
        }),
        held(staticSettings),
      ),
      /"my-bridge" has the UUID of qnet's profile qnet-office-br0 but not its name/,
    ],
    [
      "NetworkManager's configuration leaves the bridge unmanaged",
      obsWith(
        nmFacts({
          config: [{ name: "keyfile", values: new Map([["unmanaged-devices", "type:bridge"]]) }],
        }),
        held(staticSettings),
      ),
      /leaves br0 unmanaged \(\[keyfile\] unmanaged-devices=type:bridge\)/,
    ],
    [
      "qnet's bridge profile active, eth0 back on its own profile",
      obsWith(
        nmFacts({
          connections: [
            { ...lanProfile, type: "802-3-ethernet", device: "eth0", filename: "" },
            { ...brP, type: "bridge", device: "br0", filename: "" },
          ],
        }),
        held(staticSettings),
      ),
      /qnet's profile qnet-office-br0 \(on br0\) active.*run `qnet down office` first/,
    ],
  ];
  for (const [name, obs, re] of cases) {
    const p = planLab(env(lab), obs, undefined, new Set(["uplink"]));
    assert.equal(p.actions.length, 0, name);
    assert.match(p.problems.join("\n"), re, name);
  }
});

test("kinds: without NetworkManager, the iproute2 move and no conf.d file", () => {
  const p = planLab(env(lab), obsWith(null, { kind: "none" }), undefined, KINDS);
  assert.deepEqual(
    p.verdicts.map((v) => v.kind),
    ["uplink"],
  );
  assert.equal((p.actions[0]!.payload as UplinkPayload).backend, "iproute2");
});
