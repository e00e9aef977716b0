// The link kinds (pure): bridges, addresses and taps a Lab wants versus an observed snapshot, as ordered
// ip -batch actions, with a verdict per object.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpJson } from "../../src/facts/ip-json.js";
import type { HostLink } from "../../src/facts/types.js";
import { batchLine } from "../../src/kinds/links.js";
import { exampleLab, type HostSnapshot, lo, planLinks, upSnapshot } from "./host-fixtures.js";

const planHostNetwork = (lab: Parameters<typeof planLinks>[0], snap: HostSnapshot) =>
  planLinks(lab, snap).actions;

describe("the link kinds", () => {
  it("creates the bridge (STP off, mark, up), its address, then its taps on an empty host", () => {
    const lab = exampleLab("private-lan.yaml");
    const actions = planHostNetwork(lab, { netns: null, links: [lo] });
    const [vm0, vm1] = lab.vms.map((v) => v.nics[0]!.tap!);
    assert.deepEqual(
      actions.map((a) => a.batch),
      [
        [
          "link add name br0 type bridge stp_state 0 forward_delay 0 nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0",
          "link set dev br0 alias qnet:lab",
          "link set dev br0 up",
        ],
        ["addr add 10.0.2.1/24 dev br0"],
        [
          `tuntap add dev ${vm0} mode tap`,
          `link set dev ${vm0} alias qnet:lab`,
          `link set dev ${vm0} master br0 up`,
        ],
        [
          `tuntap add dev ${vm1} mode tap`,
          `link set dev ${vm1} alias qnet:lab`,
          `link set dev ${vm1} master br0 up`,
        ],
      ],
    );
    assert.deepEqual(
      actions.map((a) => a.undo),
      [
        { kind: "link", name: "br0", alias: "qnet:lab" },
        null,
        { kind: "link", name: vm0, alias: "qnet:lab" },
        { kind: "link", name: vm1, alias: "qnet:lab" },
      ],
    );
    assert.ok(actions.every((a) => /^absent|made in this run/.test(a.reason)));
  });

  it("plans nothing when the host already matches", () => {
    for (const f of ["private-lan.yaml", "services.yaml"]) {
      const lab = exampleLab(f);
      assert.deepEqual(planHostNetwork(lab, upSnapshot(lab)), []);
    }
  });

  it("refuses, before any change, a needed name held by a foreign interface, and names it", () => {
    const lab = exampleLab("private-lan.yaml");
    const foreign: HostLink = { ...lo, name: "br0", index: 7, kind: "dummy", addrs: [] };
    const p = planLinks(lab, { netns: "ns1", links: [lo, foreign] });
    assert.equal(p.problems.length, 1);
    assert.match(p.problems[0]!, /br0 .*\(no qnet mark\).*ns1/);
    assert.equal(p.verdicts.find((v) => v.name === "br0")!.state, "drifted");
    const otherLab = { ...foreign, alias: "qnet:other" };
    assert.match(
      planLinks(lab, { netns: null, links: [lo, otherLab] }).problems.join(),
      /br0 .*\(marked "qnet:other"\)/,
    );
  });

  it("re-attaches a detached tap and restores a deleted one", () => {
    const lab = exampleLab("private-lan.yaml");
    const snap = upSnapshot(lab);
    const [t0, t1] = snap.links.filter((l) => l.kind === "tun");
    t0!.master = null;
    snap.links = snap.links.filter((l) => l !== t1);
    const actions = planHostNetwork(lab, snap);
    assert.equal(actions.length, 2);
    assert.deepEqual(actions[0]!.batch, [`link set dev ${t0!.name} master br0 up`]);
    assert.equal(actions[0]!.undo, null);
    assert.equal(actions[0]!.reason, "detached from br0");
    assert.match(actions[1]!.reason, /^absent/);
    assert.deepEqual(actions[1]!.undo, { kind: "link", name: t1!.name, alias: "qnet:lab" });
  });

  it("fixes STP, a missing address and a down bridge without a new undo; status names each", () => {
    const lab = exampleLab("private-lan.yaml");
    const snap = upSnapshot(lab);
    const br = snap.links.find((l) => l.name === "br0")!;
    br.bridge!.stpState = 1;
    br.addrs = [];
    br.up = false;
    const actions = planHostNetwork(lab, snap);
    assert.deepEqual(
      actions.map((a) => [a.batch![0], a.undo]),
      [
        [
          "link set dev br0 type bridge stp_state 0 forward_delay 0 nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0",
          null,
        ],
        ["link set dev br0 up", null],
        ["addr add 10.0.2.1/24 dev br0", null],
      ],
    );
    const states = planLinks(lab, snap).verdicts.map((v) => [v.kind, v.state]);
    assert.deepEqual(states, [
      ["bridge", "drifted"],
      ["address", "missing"],
      ["tap", "present"],
      ["tap", "present"],
    ]);
  });

  it("adds user and multi_queue for a multi-vCPU virtio VM with an owner", () => {
    const lab = exampleLab("private-lan.yaml");
    lab.vms[0]!.cpus = 2;
    lab.vms[0]!.user = "nobody";
    const tap = lab.vms[0]!.nics[0]!.tap!;
    const actions = planHostNetwork(lab, { netns: null, links: [lo] });
    assert.equal(actions[2]!.batch![0], `tuntap add dev ${tap} mode tap user nobody multi_queue`);
    // A tap whose flags differ cannot be changed in place: it is made again.
    const snap = upSnapshot(lab);
    snap.links.find((l) => l.name === tap)!.tap!.multiQueue = false;
    const again = planHostNetwork(lab, snap);
    assert.equal(again.length, 1);
    assert.equal(again[0]!.batch![0], `link del dev ${tap}`);
    assert.match(again[0]!.reason, /multi_queue off/);
  });

  it("deletes stale links of the lab, but not ones with a foreign port or of other labs", () => {
    const lab = exampleLab("private-lan.yaml");
    const snap = upSnapshot(lab);
    const mk = (
      name: string,
      kind: string,
      alias: string | null,
      master: string | null = null,
    ): HostLink => ({
      ...lo,
      name,
      kind,
      alias,
      master,
      addrs: [],
    });
    snap.links.push(
      mk("qntap-stale", "tun", "qnet:lab"),
      mk("qnbr-stale", "bridge", "qnet:lab"),
      mk("qnbr-keep", "bridge", "qnet:lab"),
      mk("eth9", "veth", null, "qnbr-keep"),
      mk("qntap-other", "tun", "qnet:other"),
    );
    const actions = planHostNetwork(lab, snap);
    assert.deepEqual(
      actions.map((a) => a.batch),
      [["link del dev qnbr-stale"], ["link del dev qntap-stale"]],
    );
  });

  it("leaves user networks alone; on bridged ones only taps, no bridge (the uplink move makes it)", () => {
    const lab = exampleLab("lan-bridge.yaml");
    const actions = planHostNetwork(lab, { netns: null, links: [lo] });
    assert.deepEqual(
      actions.map((a) => a.kind),
      lab.vms.map(() => "tap"),
    );
    assert.deepEqual(
      planHostNetwork(exampleLab("user-forward.yaml"), { netns: null, links: [lo] }),
      [],
    );
  });

  it("batch lines refuse tokens that could split a line", () => {
    assert.equal(batchLine("link", "del", "dev", "br0"), "link del dev br0");
    for (const bad of ["a b", "x\ny", "#c", 'q"', ""]) assert.throws(() => batchLine("link", bad));
  });
});

describe("parseIpJson", () => {
  it("reads kind, alias, master, flags, bridge and tap details and addresses", () => {
    const links = JSON.stringify([
      { ifindex: 1, ifname: "lo", flags: ["LOOPBACK", "UP"] },
      {
        ifindex: 2,
        ifname: "br0",
        flags: ["BROADCAST", "UP"],
        ifalias: "qnet:lab",
        linkinfo: {
          info_kind: "bridge",
          info_data: { stp_state: 0, forward_delay: 0, nf_call_iptables: 0, nf_call_ip6tables: 1 },
        },
      },
      {
        ifindex: 3,
        ifname: "t0",
        flags: ["NO-CARRIER", "BROADCAST"],
        master: "br0",
        linkinfo: {
          info_kind: "tun",
          info_data: { type: "tap", multi_queue: true, user: "nobody" },
          info_slave_kind: "bridge",
        },
      },
    ]);
    const addrs = JSON.stringify([
      {
        ifname: "br0",
        addr_info: [
          { family: "inet", local: "10.0.2.1", prefixlen: 24 },
          { family: "inet6", local: "fe80::1", prefixlen: 64 },
        ],
      },
    ]);
    const [l0, br, t0] = parseIpJson(links, addrs);
    assert.equal(l0!.kind, null);
    assert.equal(br!.alias, "qnet:lab");
    assert.deepEqual(br!.bridge, {
      stpState: 0,
      forwardDelay: 0,
      nfCallIptables: 0,
      nfCallIp6tables: 1,
      nfCallArptables: null,
    });
    assert.equal(br!.addrs.length, 2);
    assert.deepEqual(t0!.tap, { type: "tap", user: "nobody", multiQueue: true });
    assert.equal(t0!.master, "br0");
    assert.equal(t0!.up, false);
    assert.equal(t0!.noCarrier, true);
    assert.deepEqual(parseIpJson("", ""), []);
  });
});
