// The engine's promise, through the CLI with real host objects and VMs in namespaces: right after `up`,
// `plan` lists no change and `status` is healthy; after each drift, `status` names exactly the objects
// `plan` would change, `up` changes exactly those (healthy VMs keep their PIDs), and `plan` is empty again.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
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
  vmPid,
} from "./helpers/host-state.js";
import { addNetns, delNetns, sh } from "./helpers/netns.js";

const example = (f: string) => join(REPO_ROOT, "examples", f);

interface Obj {
  kind: string;
  name: string;
  state: string;
  detail: string;
}
interface Change {
  what: string;
  reason: string;
  kind: string;
  object: string;
}

function planChanges(root: string, file: string, ns: string): Change[] {
  const r = qnetWith(root, ["plan", file, "--netns", ns, "--json"]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout).changes;
}

function status(root: string, lab: string): { ok: boolean; objects: Obj[] } {
  const r = qnetWith(root, ["status", lab, "--json"]);
  return JSON.parse(r.stdout);
}

describe("every example: after up, plan lists no change and status is healthy", () => {
  for (const [file, lab] of [
    ["private-lan.yaml", "lab"],
    ["services.yaml", "svc"],
    ["user-forward.yaml", "web"],
  ] as const) {
    test(file, () => {
      const ns = `qnt-eng-${process.pid}-${lab}`;
      const root = mkdtempSync(join(tmpdir(), "qnet-eng-"));
      addNetns(ns);
      try {
        const snap = hostSnapshot(ns);
        assert.ok(planChanges(root, example(file), ns).length > 0, "a plan before up");
        const up = qnetWith(root, ["up", example(file), "--netns", ns]);
        assert.equal(up.status, 0, up.stderr);
        assert.deepEqual(planChanges(root, example(file), ns), []);
        const s = status(root, lab);
        assert.equal(s.ok, true, JSON.stringify(s.objects.filter((o) => o.state !== "present")));
        assert.equal(qnetWith(root, ["status", lab]).status, 0);
        assert.equal(qnetWith(root, ["down", lab]).status, 0);
        assert.deepEqual(leftovers(root, lab), []);
        assert.deepEqual(hostSnapshot(ns), snap);
      } finally {
        qnetWith(root, ["down", lab]);
        delNetns(ns);
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
});

describe("drift: status names exactly what plan changes, and up changes exactly that", () => {
  const ns = `qnt-eng-drift-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), "qnet-eng-drift-"));
  const file = example("services.yaml");
  const inNs = (...argv: string[]) => sh(["ip", "netns", "exec", ns, ...argv]);
  let snap: ReturnType<typeof hostSnapshot>;
  let bridge = "";
  let gateway = "";
  const tapOf = (vm: string) =>
    status(root, "svc").objects.find((o) => o.kind === "tap" && o.detail.startsWith(`${vm} `))!
      .name;
  const pids = () => ({
    vm0: vmPid(root, "svc", "vm0"),
    vm1: vmPid(root, "svc", "vm1"),
    dnsmasq: readPid(join(root, "svc", "dnsmasq-lan.pid")),
  });

  before(() => {
    addNetns(ns);
    snap = hostSnapshot(ns);
    const r = qnetWith(root, ["up", file, "--netns", ns]);
    assert.equal(r.status, 0, r.stderr);
    const br = status(root, "svc").objects.find((o) => o.kind === "bridge")!;
    bridge = br.name;
    gateway = status(root, "svc")
      .objects.find((o) => o.kind === "address")!
      .name.split(" ")[0]!;
  });
  after(() => {
    qnetWith(root, ["down", "svc"]);
    delNetns(ns);
    rmSync(root, { recursive: true, force: true });
  });

  const drifts: { name: string; inject: () => void; expect: string[] }[] = [
    {
      name: "a tap deleted",
      inject: () => sh(["ip", "-n", ns, "link", "del", tapOf("vm1")]),
      expect: ["tap", "vm vm1"],
    },
    {
      name: "a tap detached from its bridge",
      inject: () => sh(["ip", "-n", ns, "link", "set", "dev", tapOf("vm0"), "nomaster"]),
      expect: ["tap"],
    },
    {
      name: "the bridge's gateway address removed",
      inject: () => sh(["ip", "-n", ns, "addr", "del", gateway, "dev", bridge]),
      expect: ["address"],
    },
    {
      name: "nf_call_iptables flipped on",
      inject: () =>
        sh([
          "ip",
          "-n",
          ns,
          "link",
          "set",
          "dev",
          bridge,
          "type",
          "bridge",
          "nf_call_iptables",
          "1",
        ]),
      expect: ["bridge"],
    },
    {
      name: "dnsmasq killed",
      inject: () => process.kill(pids().dnsmasq!, "SIGKILL"),
      expect: ["dnsmasq lan"],
    },
    {
      name: "the nft table flushed",
      inject: () => inNs("nft", "flush", "table", "ip", "qnet-svc"),
      expect: ["nft-table ip qnet-svc"],
    },
    {
      name: "a VM's QEMU killed",
      inject: () => process.kill(pids().vm0!, "SIGKILL"),
      expect: ["vm vm0"],
    },
    {
      name: "a FORWARD drop policy added after up",
      inject: () => inNs("iptables-nft", "-P", "FORWARD", "DROP"),
      expect: ["firewall accept rules in iptables-nft FORWARD"],
    },
  ];

  for (const d of drifts) {
    test(d.name, () => {
      const p0 = pids();
      d.inject();
      sleepMs(300);
      const bad = status(root, "svc")
        .objects.filter((o) => o.state !== "present")
        .map((o) => `${o.kind} ${o.name}`)
        .sort();
      const planned = [
        ...new Set(planChanges(root, file, ns).map((c) => `${c.kind} ${c.object}`)),
      ].sort();
      assert.ok(bad.length > 0, "status reports the drift");
      assert.deepEqual(planned, bad, "status names exactly the objects plan would change");
      for (const e of d.expect)
        assert.ok(
          bad.some((b) => b === e || b.startsWith(`${e} `)),
          `${e} in ${bad.join(", ")}`,
        );
      const whats = planChanges(root, file, ns).map((c) => c.what);
      const up = qnetWith(root, ["up", file, "--netns", ns]);
      assert.equal(up.status, 0, up.stderr);
      assert.deepEqual(
        up.stdout
          .split("\n")
          .filter((l) => l.startsWith("  + "))
          .map((l) => l.slice(4)),
        whats,
        "up changed exactly what plan listed",
      );
      const p1 = pids();
      for (const k of ["vm0", "vm1", "dnsmasq"] as const) {
        const touched = bad.some((b) => (k === "dnsmasq" ? b === "dnsmasq lan" : b === `vm ${k}`));
        if (touched) assert.notEqual(p1[k], p0[k], `${k} was not restarted`);
        else assert.equal(p1[k], p0[k], `${k} kept its PID`);
      }
      const s = status(root, "svc");
      assert.equal(s.ok, true, JSON.stringify(s.objects.filter((o) => o.state !== "present")));
      assert.deepEqual(planChanges(root, file, ns), []);
    });
  }

  test("the repaired lab works and goes down cleanly", () => {
    const r = qnetWith(root, ["exec", "svc", "vm1", "--", "ping", "-c1", "-W3", "vm0"]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(qnetWith(root, ["down", "svc"]).status, 0);
    // The drop policy was this test's: its iptables-nft table goes too, so the namespace is as it was.
    inNs("nft", "delete", "table", "ip", "filter");
    assert.deepEqual(leftovers(root, "svc"), []);
    assert.deepEqual(hostSnapshot(ns), snap);
  });
});

describe("a lab whose namespace was deleted by hand", () => {
  test("status says the namespace is gone and that down cleans up; down does", () => {
    const ns = `qnt-eng-gone-${process.pid}`;
    const root = mkdtempSync(join(tmpdir(), "qnet-eng-gone-"));
    try {
      const r = qnetWith(root, ["up", example("services.yaml"), "--netns", ns, "--no-vms"]);
      assert.equal(r.status, 0, r.stderr);
      sh(["ip", "netns", "del", ns]);
      const list = qnetWith(root, ["status"]);
      assert.match(list.stdout, /^svc\tnamespace gone \(run qnet down\)\tnetns /m);
      const one = qnetWith(root, ["status", "svc"]);
      assert.equal(one.status, 1);
      assert.match(
        one.stdout,
        /netns +\S+ +missing +the namespace is gone .*`qnet down svc` cleans up/,
      );
      const down = qnetWith(root, ["down", "svc"]);
      assert.equal(down.status, 0, down.stderr);
      assert.deepEqual(leftovers(root, "svc"), []);
    } finally {
      qnetWith(root, ["down", "svc"]);
      delNetns(ns);
      rmSync(root, { recursive: true, force: true });
    }
  });
});
