// The web view's data (pure): the graph of every example (golden), where each status object shows,
// check results as the page draws them, and the differences pushed to viewers.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { CheckReport } from "../../src/lab/check.js";
import type { StatusObject } from "../../src/lab/status.js";
import { checkView, elementOf, statusRows } from "../../src/ui/lab-facts.js";
import { diffRows } from "../../src/ui/live-state.js";
import type { StatusRow } from "../../src/ui/protocol.js";
import { labTopology } from "../../src/ui/topology.js";
import { assertGolden, REPO_ROOT } from "../helpers/golden.js";
import { compile } from "../helpers/topology.js";

const labOf = (name: string) => {
  const file = `examples/${name}.yaml`;
  return compile(readFileSync(join(REPO_ROOT, file), "utf8"), file).lab;
};

const examples = readdirSync(join(REPO_ROOT, "examples"))
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => f.slice(0, -".yaml".length))
  .sort();

describe("the graph of each example (golden)", () => {
  for (const name of examples) {
    test(name, () => {
      const t = labTopology(labOf(name), "file", { file: `examples/${name}.yaml` });
      assertGolden(`${name}.ui-topology.json`, `${JSON.stringify(t, null, 2)}\n`);
    });
  }
});

describe("labTopology", () => {
  test("every edge joins two nodes, ids are unique, NICs sit in their VM", () => {
    for (const name of examples) {
      const t = labTopology(labOf(name), "live", { consoles: [] });
      const ids = new Set(t.nodes.map((n) => n.id));
      assert.equal(ids.size, t.nodes.length, `${name}: duplicate node ids`);
      for (const e of t.edges) {
        assert.ok(ids.has(e.source), `${name}: ${e.id} from ${e.source}`);
        assert.ok(ids.has(e.target), `${name}: ${e.id} to ${e.target}`);
      }
      for (const n of t.nodes.filter((x) => x.kind === "nic"))
        assert.ok(n.parent && ids.has(n.parent), `${name}: ${n.id} has its VM`);
    }
  });

  test("private-lan: the host, lan, two VMs with address and MAC on their NIC, taps on the edges", () => {
    const t = labTopology(labOf("private-lan"), "live", { consoles: ["vm0", "vm1"] });
    assert.deepEqual(
      t.nodes.map((n) => [n.id, n.label]),
      [
        ["host", "host"],
        ["net:lan", "lan\nbridge br0 · 10.0.2.0/24\nDHCP/DNS"],
        ["vm:vm0", "vm0"],
        ["nic:vm0:0", "10.0.2.2/24\n52:54:00:12:34:56"],
        ["vm:vm1", "vm1"],
        ["nic:vm1:0", "10.0.2.3/24\n52:54:00:12:34:57"],
      ],
    );
    assert.deepEqual(
      t.edges.map((e) => [e.id, e.source, e.target, e.label]),
      [
        ["gw:lan", "host", "net:lan", "10.0.2.1/24"],
        ["port:vm0:0", "nic:vm0:0", "net:lan", t.edges[1]!.label],
        ["port:vm1:0", "nic:vm1:0", "net:lan", t.edges[2]!.label],
      ],
    );
    assert.match(t.edges[1]!.label, /^qntap-[0-9a-f]{8}$/);
    assert.deepEqual(t.consoles, ["vm0", "vm1"]);
  });

  test("forwards: to their VM on a bridge network, to the network on a user network", () => {
    const svc = labTopology(labOf("services"), "file");
    const f = svc.nodes.find((n) => n.kind === "forward")!;
    assert.equal(f.label, "tcp 127.0.0.1:8022 → vm0:22");
    assert.equal(svc.edges.find((e) => e.source === f.id)?.target, "vm:vm0");
    const web = labTopology(labOf("user-forward"), "file");
    const fw = web.nodes.filter((n) => n.kind === "forward");
    assert.deepEqual(
      fw.map((n) => n.label),
      ["tcp 127.0.0.1:2222 → 22", "tcp 127.0.0.1:8080 → 80"],
    );
    for (const n of fw)
      assert.equal(web.edges.find((e) => e.source === n.id)?.target, "net:usernet");
  });
});

describe("where status objects show in the graph", () => {
  const lab = labOf("private-lan");
  const tap1 = lab.vms[1]!.nics[0]!.tap!;
  const objects: StatusObject[] = [
    { kind: "netns", name: "ns", state: "present", detail: "" },
    { kind: "bridge", name: "br0", state: "present", detail: "network lan" },
    { kind: "address", name: "10.0.2.1/24 on br0", state: "drifted", detail: "" },
    { kind: "tap", name: tap1, state: "missing", detail: "" },
    { kind: "dnsmasq", name: "lan", state: "present", detail: "" },
    { kind: "nft-table", name: "ip qnet-lab", state: "present", detail: "" },
    {
      kind: "vm",
      name: "vm0",
      state: "present",
      detail: "running",
      addresses: [{ nic: 0, network: "lan", mac: "", ifname: "eth0", ipv4: ["10.0.2.2/24"] }],
    },
    { kind: "vm", name: "vm1", state: "missing", detail: "stopped", addresses: null },
  ];

  test("each kind maps to its element (unknown names to none)", () => {
    assert.deepEqual(
      objects.map((o) => elementOf(lab, o)),
      ["host", "net:lan", "gw:lan", "port:vm1:0", "net:lan", "host", "vm:vm0", "vm:vm1"],
    );
    assert.equal(elementOf(lab, { kind: "vm", name: "vm9" }), null);
    assert.equal(elementOf(lab, { kind: "tap", name: "qntap-00000000" }), null);
    assert.equal(elementOf(lab, { kind: "something-new", name: "x" }), null);
  });

  test("rows carry the key, the element and the VMs' addresses by NIC", () => {
    const rows = statusRows(lab, objects);
    assert.deepEqual(
      rows.map((r) => r.key),
      objects.map((o) => `${o.kind}:${o.name}`),
    );
    assert.deepEqual(rows[6]!.addresses, { 0: ["10.0.2.2/24"] });
    assert.equal(rows[7]!.addresses, null);
    assert.equal(rows[0]!.addresses, undefined);
  });
});

test("checkView: a column per target, the cause kept", () => {
  const pair = (id: string, kind: string, from: string, to: string, extra = {}) => ({
    id,
    kind,
    from,
    to,
    network: "lan",
    address: "10.0.2.3",
    port: null,
    status: "pass",
    latencyMs: 1.5,
    detail: "reply",
    cause: null,
    source: null,
    forward: null,
    ends: [],
    blocked: null,
    ...extra,
  });
  const report = {
    lab: "lab",
    netns: null,
    ok: false,
    summary: { pass: 3, fail: 1, warn: 0, skip: 0 },
    pairs: [
      pair("vm0>vm1@lan", "vm-vm", "vm0", "vm1", {
        status: "fail",
        cause: "tap gone",
        latencyMs: null,
      }),
      pair("vm0>gateway@lan", "vm-gateway", "vm0", "gateway"),
      pair("host>fwd", "forward", "host", "vm0", {
        forward: { proto: "tcp", hostPort: 8022, guestPort: 22 },
      }),
      pair("vm0>nat:192.0.2.1", "nat", "vm0", "192.0.2.1", { address: "192.0.2.1" }),
    ],
    doctor: [],
  } as unknown as CheckReport;
  const v = checkView(report);
  assert.deepEqual(
    v.pairs.map((p) => [p.id, p.column, p.status, p.cause]),
    [
      ["vm0>vm1@lan", "vm1", "fail", "tap gone"],
      ["vm0>gateway@lan", "gateway", "pass", null],
      ["host>fwd", "tcp :8022", "pass", null],
      ["vm0>nat:192.0.2.1", "NAT 192.0.2.1", "pass", null],
    ],
  );
  assert.deepEqual(v.summary, report.summary);
});

test("diffRows: changed and new rows, removed keys, nothing when equal", () => {
  const row = (key: string, state: StatusRow["state"], detail = ""): StatusRow => ({
    key,
    kind: key.split(":")[0]!,
    name: key.split(":")[1]!,
    state,
    detail,
    element: null,
  });
  const a = [row("vm:vm0", "present"), row("vm:vm1", "present"), row("tap:t1", "present")];
  assert.deepEqual(diffRows(a, a), { changed: [], removed: [] });
  const b = [row("vm:vm0", "present"), row("vm:vm1", "missing"), row("dnsmasq:lan", "present")];
  assert.deepEqual(diffRows(a, b), {
    changed: [row("vm:vm1", "missing"), row("dnsmasq:lan", "present")],
    removed: ["tap:t1"],
  });
  assert.deepEqual(diffRows(a, [row("vm:vm0", "present", "pid 2"), a[1]!, a[2]!]).changed, [
    row("vm:vm0", "present", "pid 2"),
  ]);
});
