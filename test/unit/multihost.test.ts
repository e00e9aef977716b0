// Multi-host labs, pure: the located rules, resolution of spans (VNI, device, overlay MTU), a host's part,
// the renderers that tell guests the overlay's MTU, and the vxlan and fdb kinds against observations.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseFdbJson } from "../../src/facts/fdb-json.js";
import { parseIpJson } from "../../src/facts/ip-json.js";
import {
  emptyObservation,
  type FdbEntry,
  type HostLink,
  type Observation,
} from "../../src/facts/types.js";
import { planLab } from "../../src/kinds/index.js";
import { renderCloudInit } from "../../src/render/cloud-init.js";
import { renderDnsmasqConf } from "../../src/render/dnsmasq-conf.js";
import { builtinAppend } from "../../src/render/guest-boot.js";
import { deriveVni } from "../../src/resolve/hosts.js";
import { labPart } from "../../src/resolve/part.js";
import { assertGolden, REPO_ROOT } from "../helpers/golden.js";
import { compile, errorsOf, runCli, warningsOf } from "../helpers/topology.js";
import { env, lo } from "./host-fixtures.js";

const FIXTURE = `${REPO_ROOT}/test/fixtures/multihost/three-hosts.yaml`;
const three = () => compile(readFileSync(FIXTURE, "utf8"), FIXTURE).lab;

const HOSTS = `
hosts:
  h1: { address: 10.200.0.1 }
  h2: { address: 10.200.0.2, mtu: 9000 }
`;

const found = (text: string) =>
  errorsOf(text).map((d) => `${d.line}:${d.column} ${d.path}: ${d.message}`);

describe("multi-host rules (located)", () => {
  it("every VM names a known host; homes are known hosts, with did-you-mean", () => {
    const errs = found(`name: l
${HOSTS}
networks:
  lan: { type: bridge, subnet: 10.0.0.0/24, home: h3 }
vms:
  a: { host: h1, nics: [{ network: lan }] }
  b: { host: hx, nics: [{ network: lan }] }
  c: { nics: [{ network: lan }] }
`);
    assert.deepEqual(errs, [
      `8:51 networks.lan.home: unknown host "h3" (did you mean "h1"?); hosts: h1, h2`,
      `11:14 vms.b.host: unknown host "hx" (did you mean "h1"?); hosts: h1, h2`,
      "12:3 vms.c: VM c names no host: with `hosts:` every VM needs `host:`, one of h1, h2",
    ]);
  });

  it("user and bridged networks are used only on their own host", () => {
    const errs = found(`name: l
${HOSTS}
networks:
  wan: { type: user }
  office: { type: bridged, uplink: eth0, home: h2 }
vms:
  a: { host: h2, nics: [{ network: wan }, { network: office }] }
  b: { host: h1, nics: [{ network: office }] }
`);
    assert.equal(errs.length, 2);
    assert.match(
      errs[0]!,
      /^11:36 vms\.a\.nics\[0\]\.network: network wan \(type user\) belongs to host h1 \(the first host, its default `home`\), but VM a runs on h2: QEMU's user networking .*Set `home: h2` on the network or move the VM$/,
    );
    assert.match(
      errs[1]!,
      /^12:36 vms\.b\.nics\[0\]\.network: network office \(type bridged\) belongs to host h2, but VM b runs on h1: its uplink is a NIC of that host/,
    );
  });

  it("underlay addresses are distinct unicast IPv4; VNIs written are distinct", () => {
    const errs = found(`name: l
hosts:
  h1: { address: 10.200.0.1 }
  h2: { address: 10.200.0.1 }
  h3: { address: 127.0.0.1 }
  h4: { address: nope }
networks:
  a: { type: bridge, subnet: 10.0.0.0/24, vni: 7 }
  b: { type: bridge, subnet: 10.0.1.0/24, vni: 7 }
vms: {}
`);
    assert.deepEqual(errs, [
      "4:18 hosts.h2.address: address 10.200.0.1 is already the address of host h1",
      "5:18 hosts.h3.address: 127.0.0.1 is not a unicast address another host can reach (loopback, multicast, 0.0.0.0 and the like are refused)",
      `6:18 hosts.h4.address: found "nope"; expected an IPv4 address`,
      "9:48 networks.b.vni: VNI 7 is already network a's",
    ]);
  });

  it("host, home and vni need a hosts: section; unknown keys under a host get did-you-mean", () => {
    const errs = found(`name: l
hosts:
  h1: { adress: 10.0.0.1 }
networks:
  a: { type: bridge, subnet: 10.0.0.0/24, home: h1, vni: 9 }
vms:
  v: { host: h1, nics: [] }
`);
    assert.ok(
      errs.some((e) =>
        /hosts\.h1\.adress: unknown key "adress" \(did you mean "address"\?\)/.test(e),
      ),
      errs.join("\n"),
    );
    assert.ok(!errs.some((e) => /unknown host/.test(e)), "a host with a bad field is still known");
    const none = found(`name: l
networks:
  a: { type: bridge, subnet: 10.0.0.0/24, home: h1, vni: 9 }
vms:
  v: { host: h1, nics: [] }
`);
    assert.deepEqual(none, [
      "5:14 vms.v.host: `host` needs a `hosts:` section that names the lab's hosts",
      "3:49 networks.a.home: `home` needs a `hosts:` section that names the lab's hosts",
      "3:58 networks.a.vni: `vni` applies to a network that spans hosts: it needs a `hosts:` section",
    ]);
  });

  it("refuses more than 1023 ports on one bridge (the kernel's BR_MAX_PORTS less port 0), per host", () => {
    const vms = (n: number, host: string, from = 0) =>
      Array.from(
        { length: n },
        (_, i) => `  v${i + from}: { host: ${host}, nics: [{ network: lan }] }`,
      ).join("\n");
    const text = (a: number, b: number) => `name: l
${HOSTS}
networks:
  lan: { type: bridge, subnet: 10.0.0.0/16 }
vms:
${vms(a, "h1")}
${vms(b, "h2", a)}
`;
    // 1022 taps + the VXLAN device fit; one more does not. Peers cost no port.
    assert.deepEqual(found(text(1022, 1022)), []);
    const errs = found(text(1023, 10));
    assert.equal(errs.length, 1);
    assert.match(
      errs[0]!,
      /networks\.lan: network lan needs 1024 ports on one bridge on host h1 \(1023 VM NICs \+ its VXLAN device\); the kernel allows 1023 per bridge \(BR_MAX_PORTS 1024, port 0 unused\): spread its VMs over more hosts/,
    );
    const single = found(`name: l
networks:
  lan: { type: bridge, subnet: 10.0.0.0/16 }
vms:
${Array.from({ length: 1024 }, (_, i) => `  v${i}: { nics: [{ network: lan }] }`).join("\n")}
`);
    assert.match(
      single[0]!,
      /network lan needs 1024 ports on one bridge \(1024 VM NICs\); the kernel allows 1023 per bridge \(BR_MAX_PORTS 1024, port 0 unused\): split the network, or spread it over hosts/,
    );
  });

  it("the test's file and the documented one are valid, without warnings", () => {
    assert.deepEqual(warningsOf(readFileSync(FIXTURE, "utf8")), []);
    const doc = readFileSync(`${REPO_ROOT}/docs/multi-host.yaml`, "utf8");
    assert.deepEqual(errorsOf(doc), []);
    assert.deepEqual(warningsOf(doc), []);
  });
});

describe("the CLI on a multi-host file", () => {
  it("export refuses it (the scripts describe one host); --host on a single-host lab is a usage error", () => {
    const doc = `${REPO_ROOT}/docs/multi-host.yaml`;
    const r = runCli(["export", "shell", doc]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /lab span spans hosts \(`hosts:`\): the export describes one host/);
    const p = runCli(["plan", `${REPO_ROOT}/examples/private-lan.yaml`, "--host", "h1"]);
    assert.equal(p.status, 2);
    assert.match(p.stderr, /--host h1: lab lab names no hosts/);
    const v = runCli(["validate", doc, "--json"]);
    assert.equal(v.status, 0, v.stderr);
    assert.deepEqual(
      JSON.parse(v.stdout).lab.hosts.map((h: { name: string }) => h.name),
      ["h1", "h2", "h3"],
    );
  });
});

describe("resolution of spans", () => {
  it("spans networks over the hosts of their VMs and gateway; VNI, device, MTU", () => {
    const lab = three();
    const [back, lan] = lab.networks;
    assert.equal(
      back!.type === "bridge" && back!.span?.hosts.join(),
      "h2,h3",
      "no gateway: not on h1",
    );
    assert.equal(lan!.type === "bridge" && lan!.span?.hosts.join(), "h1,h2,h3");
    assert.ok(lan!.type === "bridge" && lan!.span);
    assert.equal(lan!.span.mtu, 1450);
    assert.match(lan!.span.device, /^qnvx-[0-9a-f]{8}$/);
    assert.equal(lan!.span.device.slice(5), lan!.bridge.slice(5), "named like its bridge");
    assert.equal(lan!.span.vni, deriveVni("span", "lan", new Set()));
    assert.deepEqual(
      lab.vms.map((v) => [v.name, v.host]),
      [
        ["vm1", "h1"],
        ["vm2", "h2"],
        ["vm3", "h3"],
      ],
    );
  });

  it("the overlay MTU is the smallest underlay MTU of the network's hosts minus 50; vni: is kept", () => {
    const { lab } = compile(`name: l
${HOSTS}
networks:
  lan: { type: bridge, subnet: 10.0.0.0/24, vni: 4242 }
  jumbo: { type: bridge, subnet: 10.0.1.0/24, gateway: none }
  local: { type: bridge, subnet: 10.0.2.0/24 }
vms:
  a: { host: h1, nics: [{ network: lan }, { network: local }] }
  b: { host: h2, nics: [{ network: lan }, { network: jumbo }] }
  c: { host: h2, nics: [{ network: jumbo }] }
`);
    const net = (n: string) => lab.networks.find((x) => x.name === n)!;
    const lan = net("lan");
    assert.ok(lan.type === "bridge" && lan.span);
    assert.equal(lan.span.vni, 4242);
    assert.equal(lan.span.mtu, 1450);
    const jumbo = net("jumbo");
    assert.ok(jumbo.type === "bridge");
    assert.equal(jumbo.span, undefined, "on h2 alone");
    const local = net("local");
    assert.ok(local.type === "bridge" && !local.span);
  });

  it("derived VNIs are 24-bit, non-zero, and never one taken", () => {
    const taken = new Set<number>();
    const a = deriveVni("l", "n", taken);
    const b = deriveVni("l", "n", taken);
    assert.notEqual(a, b);
    for (const v of [a, b]) assert.ok(v > 0 && v < 2 ** 24);
  });
});

describe("a host's part", () => {
  it("h2 runs its VMs and the networks it is on; lan's gateway, DHCP and names stay on h1", () => {
    const lab = three();
    const h2 = labPart(lab, "h2");
    assert.deepEqual(
      h2.vms.map((v) => v.name),
      ["vm2"],
    );
    assert.deepEqual(
      h2.part!.remoteVms.map((v) => v.name),
      ["vm1", "vm3"],
    );
    const lan = h2.networks.find((n) => n.name === "lan")!;
    assert.ok(lan.type === "bridge");
    assert.equal(lan.gateway, null);
    assert.equal(lan.dhcp, true, "the VMs still ask for DHCP: h1 answers over VXLAN");
    // The guest: DHCP on lan, a static address on back, the overlay's MTU on both.
    assert.match(
      builtinAppend(h2, h2.vms[0]!),
      /qnet\.nic0=52:54:00:[0-9a-f:]{8},dhcp,,1450 qnet\.nic1=52:54:00:[0-9a-f:]{8},10\.21\.0\.1\/24,,1450$/,
    );
    assert.deepEqual(
      labPart(lab, "h1").networks.map((n) => n.name),
      ["lan"],
    );
  });

  it("the home's dnsmasq leases every VM of the network and hands out MTU 1450 (golden)", () => {
    const h1 = labPart(three(), "h1");
    const lan = h1.networks.find((n) => n.name === "lan")!;
    assert.ok(lan.type === "bridge");
    const conf = renderDnsmasqConf(h1, lan, "/run/qnet/span");
    assertGolden("multihost/dnsmasq-span-lan.conf", conf);
    assert.equal((conf.match(/^dhcp-host=/gm) ?? []).length, 3);
    assert.match(conf, /^dhcp-option=option:mtu,1450$/m);
  });

  it("cloud-init tells a disk image the overlay's MTU", () => {
    const { lab } = compile(`name: l
${HOSTS}
networks:
  lan: { type: bridge, subnet: 10.0.0.0/24 }
vms:
  a: { host: h1, disk: /x.qcow2, nics: [{ network: lan }] }
  b: { host: h2, nics: [{ network: lan }] }
`);
    const part = labPart(lab, "h1");
    assert.match(
      renderCloudInit(part, part.vms[0]!)["network-config"],
      /set-name: "eth0"\n {4}mtu: 1450\n {4}dhcp4: true/,
    );
  });
});

const addr = (local: string) => ({ family: "inet" as const, local, prefixlen: 24 });
const link = (l: Partial<HostLink> & { name: string }): HostLink => ({
  index: 2,
  kind: null,
  alias: null,
  master: null,
  up: true,
  noCarrier: false,
  mac: null,
  mtu: 1500,
  bridge: null,
  tap: null,
  addrs: [],
  ...l,
});

describe("the vxlan and fdb kinds", () => {
  const h2 = labPart(three(), "h2");
  const found = h2.networks.find((n) => n.name === "lan")!;
  assert.ok(found.type === "bridge" && found.span);
  const lan = { ...found, span: found.span };
  const dev = lan.span.device;
  const underlay = link({ name: "ul0", addrs: [addr("10.200.0.2")] });
  const vx = (over: Partial<HostLink> = {}): HostLink =>
    link({
      name: dev,
      kind: "vxlan",
      alias: "qnet:span",
      master: lan.bridge,
      mtu: 1450,
      vxlan: { vni: lan.span.vni, local: "10.200.0.2", port: 4789, learning: false },
      ...over,
    });
  const plan = (links: HostLink[], fdb: FdbEntry[] = []) => {
    const obs: Observation = { ...emptyObservation("h2", true), links: [lo, ...links], fdb };
    return planLab(env(h2, "h2"), obs, undefined, new Set(["vxlan", "fdb"] as const));
  };
  const flood = (dst: string): FdbEntry => ({
    mac: "00:00:00:00:00:00",
    dev,
    dst,
    flags: ["self"],
    state: "permanent",
  });

  it("creates the device (VNI, local, dstport 4789, nolearning, MTU, mark, bridge) and its peers", () => {
    const p = plan([underlay]);
    assert.deepEqual(p.problems, []);
    const mine = p.actions.filter((a) => a.what.includes(dev));
    assert.deepEqual(mine[0]!.batch, [
      `link add name ${dev} mtu 1450 type vxlan id ${lan.span!.vni} local 10.200.0.2 dstport 4789 nolearning`,
      `link set dev ${dev} alias qnet:span`,
      `link set dev ${dev} master ${lan.bridge} up`,
    ]);
    assert.deepEqual(mine[0]!.undo, { kind: "link", name: dev, alias: "qnet:span" });
    const fdb = mine.filter((a) => a.kind === "fdb");
    assert.deepEqual(
      fdb.map((a) => (a.payload as { lines: string[] }).lines[0]),
      [
        `fdb append 00:00:00:00:00:00 dev ${dev} dst 10.200.0.1 self permanent`,
        `fdb append 00:00:00:00:00:00 dev ${dev} dst 10.200.0.3 self permanent`,
      ],
    );
    assert.deepEqual(
      fdb.map((a) => a.undo),
      [null, null],
      "entries go with their new device",
    );
  });

  it("is present when up; a missing entry is added and journaled; a stale one deleted", () => {
    const ok = plan([underlay, vx()], [flood("10.200.0.1"), flood("10.200.0.3")]);
    assert.deepEqual(
      ok.actions.filter((a) => a.what.includes(dev)),
      [],
    );
    const p = plan([underlay, vx()], [flood("10.200.0.1"), flood("10.200.0.9")]);
    const fdb = p.actions.filter((a) => a.kind === "fdb" && a.what.includes(dev));
    assert.deepEqual(
      fdb.map((a) => [a.what, a.undo]),
      [
        [
          `add FDB entry 00:00:00:00:00:00 dst 10.200.0.3 on ${dev} (peer h3)`,
          { kind: "fdb", device: dev, dst: "10.200.0.3", alias: "qnet:span" },
        ],
        [`delete FDB entry 00:00:00:00:00:00 dst 10.200.0.9 on ${dev}`, null],
      ],
    );
  });

  it("recreates a device whose VXLAN parameters drifted, and re-adds its entries", () => {
    const p = plan(
      [
        underlay,
        vx({ vxlan: { vni: lan.span!.vni, local: "10.200.0.2", port: 4789, learning: true } }),
      ],
      [flood("10.200.0.1"), flood("10.200.0.3")],
    );
    const mine = p.verdicts.filter((v) => v.name.startsWith(dev));
    assert.deepEqual(
      mine.map((v) => [v.kind, v.state, v.detail]),
      [
        ["vxlan", "drifted", "learns remote addresses (wanted nolearning)"],
        ["fdb", "missing", "absent (the device is made in this run)"],
        ["fdb", "missing", "absent (the device is made in this run)"],
      ],
    );
    assert.equal(mine[0]!.actions[0]!.batch![0], `link del dev ${dev}`);
    const mtu = plan(
      [underlay, vx({ mtu: 1500, master: null })],
      [flood("10.200.0.1"), flood("10.200.0.3")],
    );
    assert.deepEqual(
      mtu.actions.filter((a) => a.kind === "vxlan" && a.what.includes(dev)).map((a) => a.batch![0]),
      [`link set dev ${dev} mtu 1450`, `link set dev ${dev} master ${lan.bridge} up`],
    );
  });

  it("refuses when the underlay address is not here, or its MTU cannot carry the overlay", () => {
    assert.match(
      plan([]).problems[0]!,
      /host h2's underlay address 10\.200\.0\.2 is on no interface here \(network namespace h2\): is this host h2\? Pass the right --host/,
    );
    const small = plan([link({ name: "ul0", mtu: 1400, addrs: [addr("10.200.0.2")] })]);
    assert.match(
      small.problems[0]!,
      /the underlay interface ul0 \(10\.200\.0\.2\) has MTU 1400, but VXLAN needs 1500 .* set `mtu: 1400` on host h2/,
    );
    const clash = plan([
      underlay,
      link({
        name: "other",
        kind: "vxlan",
        vxlan: { vni: lan.span!.vni, local: null, port: 4789, learning: true },
      }),
    ]);
    assert.match(
      clash.problems.join(),
      new RegExp(
        `VNI ${lan.span!.vni} of network lan is already used by VXLAN device other: set another \`vni:\``,
      ),
    );
  });

  it("reads VXLAN parameters from ip -json -details and entries from bridge -json fdb", () => {
    const links = parseIpJson(
      JSON.stringify([
        {
          ifname: "vx0",
          ifindex: 3,
          flags: ["UP"],
          mtu: 1450,
          linkinfo: {
            info_kind: "vxlan",
            info_data: { id: 42, local: "10.9.9.1", port: 4789, learning: false },
          },
        },
      ]),
      "[]",
    );
    assert.deepEqual(links[0]!.vxlan, { vni: 42, local: "10.9.9.1", port: 4789, learning: false });
    assert.deepEqual(
      parseFdbJson(
        `[{"mac":"00:00:00:00:00:00","ifname":"vx0","dst":"10.9.9.2","flags":["self"],"state":"permanent"},{"mac":"46:9A:60:1D:CE:E2","ifname":"vx0","flags":[],"master":"br0","state":"permanent"},{"mac":"x"}]`,
      ),
      [
        {
          mac: "00:00:00:00:00:00",
          dev: "vx0",
          dst: "10.9.9.2",
          flags: ["self"],
          state: "permanent",
        },
        { mac: "46:9a:60:1d:ce:e2", dev: "vx0", dst: null, flags: [], state: "permanent" },
      ],
    );
  });
});
