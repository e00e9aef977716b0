// Impairments, pure: units and located errors, resolution (NIC over network), the tc lines, reading real
// `tc -json` output of a Debian 6.1 kernel back, the kind's diff, live changes, and check's cause.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { observedRoot, parseFilters, parseQdiscs } from "../../src/facts/tc-json.js";
import { emptyObservation } from "../../src/facts/types.js";
import { impairedTaps } from "../../src/kinds/ifb.js";
import { impairKind, rootMatches } from "../../src/kinds/impair.js";
import type { PlanEnv } from "../../src/kinds/types.js";
import { explainFailures } from "../../src/lab/check-causes.js";
import type { PairResult } from "../../src/lab/check-pairs.js";
import { changedImpairment } from "../../src/lab/impair.js";
import { describeImpairment, parseImpairSpec } from "../../src/model/impair.js";
import { withLiveImpairments } from "../../src/model/impair-live.js";
import type { Lab } from "../../src/model/lab.js";
import { renderAscii } from "../../src/render/diagram.js";
import { redirectLines, rootQdiscLines } from "../../src/render/tc.js";
import { REPO_ROOT } from "../helpers/golden.js";
import { compile, rejects } from "../helpers/topology.js";

const FIX = JSON.parse(
  readFileSync(join(REPO_ROOT, "test", "fixtures", "tc", "debian-6.1-tc-json.json"), "utf8"),
) as Record<string, string>;

const lab = (nicImpair: string, netImpair = "") => `name: t
networks:
  lan:
    type: bridge
    subnet: 10.0.9.0/24
${netImpair ? `    impair: ${netImpair}\n` : ""}  wan:
    type: user
vms:
  vm0:
    nics:
      - network: lan
${nicImpair ? `        impair: ${nicImpair}\n` : ""}  vm1:
    nics:
      - network: lan
`;

describe("impairments in the topology", () => {
  test("a NIC's fields override its network's; others inherit the network's default", () => {
    const l = compile(lab("{ delay: 40ms }", "{ delay: 10ms, loss: 1%, rate: 10mbit }")).lab;
    const [vm0, vm1] = l.vms;
    assert.deepEqual(vm0!.nics[0]!.impair, { delayUs: 40_000, lossPct: 1, rateBit: 10_000_000 });
    assert.deepEqual(vm1!.nics[0]!.impair, { delayUs: 10_000, lossPct: 1, rateBit: 10_000_000 });
    assert.equal(describeImpairment(vm0!.nics[0]!.impair), "delay 40ms, loss 1%, rate 10mbit");
  });

  test("no impairment: no field in the resolved NIC (resolved labs of other files are unchanged)", () => {
    const l = compile(lab("")).lab;
    assert.equal("impair" in l.vms[0]!.nics[0]!, false);
  });

  test("every unit and combination error is located at its field", () => {
    const d = rejects(
      lab(
        '{ delay: "40 sec", jitter: 5ms, loss: 120%, rate: 1mbps, duplicate: 1, corrupt: x, reorder: 5% }',
      ),
    );
    const by = Object.fromEntries(d.map((x) => [x.path, x]));
    assert.match(by["vms.vm0.nics[0].impair.delay"]!.message, /found "40 sec": expected a time/);
    assert.match(by["vms.vm0.nics[0].impair.loss"]!.message, /at most 100%/);
    assert.match(by["vms.vm0.nics[0].impair.rate"]!.message, /bytes per second/);
    assert.match(by["vms.vm0.nics[0].impair.duplicate"]!.message, /1 has no unit: write 1%/);
    assert.match(by["vms.vm0.nics[0].impair.corrupt"]!.message, /expected a percentage/);
    assert.equal(by["vms.vm0.nics[0].impair.delay"]!.line, 12);
    const combo = rejects(lab("{ jitter: 5ms, reorder: 10% }"));
    assert.deepEqual(combo.map((x) => x.path).sort(), [
      "vms.vm0.nics[0].impair.jitter",
      "vms.vm0.nics[0].impair.reorder",
    ]);
    const big = rejects(lab("{ delay: 5ms, jitter: 10ms }"));
    assert.match(big[0]!.message, /jitter 10ms is larger than the delay 5ms/);
  });

  test("unknown impairment keys get a did-you-mean", () => {
    const d = rejects(lab("{ latency: 40ms }"));
    assert.match(d[0]!.message, /latency/);
  });

  test("a user network refuses impairments, with the reason, on the network and on a NIC", () => {
    const text = `name: t
networks:
  wan:
    type: user
    impair: { delay: 10ms }
vms:
  vm0:
    nics:
      - network: wan
        impair: { loss: 1% }
`;
    const d = rejects(text);
    assert.deepEqual(d.map((x) => x.path).sort(), [
      "networks.wan.impair",
      "vms.vm0.nics[0].impair",
    ]);
    for (const x of d) assert.match(x.message, /user networking has no host device/);
  });

  test("a macvtap network refuses impairments", () => {
    const d = rejects(`name: t
networks:
  office:
    type: bridged
    uplink: eth0
    mode: macvtap
    impair: { rate: 1mbit }
vms:
  vm0:
    nics:
      - network: office
`);
    assert.match(d[0]!.message, /macvtap/);
  });
});

describe("tc lines", () => {
  test("netem with a tbf under it for a rate; a pure rate is a tbf alone; a redirect of the ingress", () => {
    const i = parseImpairSpec({ delay: "40ms", jitter: "5ms", loss: "1%", rate: "10mbit" });
    assert.deepEqual(rootQdiscLines("qntap-1", i, false), [
      "qdisc add dev qntap-1 root handle 5154: netem limit 10000 delay 40000us 5000us loss 1%",
      "qdisc add dev qntap-1 parent 5154:1 handle 5155: tbf rate 10000000bit burst 25000 latency 200ms",
    ]);
    assert.deepEqual(rootQdiscLines("qnifb-1", parseImpairSpec({ rate: "1mbit" }), true), [
      "qdisc del dev qnifb-1 root",
      "qdisc add dev qnifb-1 root handle 5154: tbf rate 1000000bit burst 6056 latency 200ms",
    ]);
    assert.deepEqual(redirectLines("qntap-1", "qnifb-1", false), [
      "qdisc add dev qntap-1 ingress",
      "filter add dev qntap-1 parent ffff: pref 5154 protocol all u32 match u32 0 0 action mirred egress redirect dev qnifb-1",
    ]);
  });

  test("a device name that could split a batch line is refused", () => {
    assert.throws(() => rootQdiscLines("a b", { rateBit: 1e6 }, false), /unsafe token/);
  });
});

describe("reading tc -json back (real output of Debian's 6.1 kernel and iproute2 6.1)", () => {
  const withDev = (json: string) => parseQdiscs(json.replaceAll('"handle"', '"dev":"t0","handle"'));

  test("netem's options read back as the impairment that was set", () => {
    const q = withDev(
      FIX["netem limit 10000 delay 40000us 5000us loss 1% duplicate 1% corrupt 0.5% reorder 25%"]!,
    );
    const r = observedRoot(q, "t0", "5154:", "5155:");
    assert.equal(r.root, "netem");
    assert.deepEqual(r.impairment, {
      delayUs: 40_000,
      jitterUs: 5_000,
      lossPct: 1,
      duplicatePct: 1,
      corruptPct: 0.5,
      reorderPct: 25,
    });
    const want = parseImpairSpec({
      delay: "40ms",
      jitter: "5ms",
      loss: "1%",
      duplicate: "1%",
      corrupt: "0.5%",
      reorder: "25%",
    });
    assert.equal(rootMatches(want, r), true);
    assert.equal(rootMatches({ ...want, lossPct: 2 }, r), false);
  });

  test("tick rounding (1500us reads back as 1499us) still matches; delay 0 is a netem without delay", () => {
    const r = observedRoot(
      withDev(FIX["netem limit 10000 delay 1500us 200us reorder 10%"]!),
      "t0",
      "5154:",
      "5155:",
    );
    assert.equal(r.impairment.delayUs, 1499);
    assert.equal(
      rootMatches(parseImpairSpec({ delay: "1500us", jitter: "200us", reorder: "10%" }), r),
      true,
    );
    const zero = observedRoot(withDev(FIX["netem limit 10000 delay 0us"]!), "t0", "5154:", "5155:");
    assert.equal(zero.root, "netem");
    assert.equal(rootMatches({ delayUs: 0 }, zero), true);
    assert.equal(rootMatches({ delayUs: 0 }, { root: "none", impairment: {}, detail: "" }), false);
  });

  test("netem with tbf under it; the namespace-wide dump and the redirect filter", () => {
    const all = parseQdiscs(FIX["all qdiscs"]!);
    const r = observedRoot(all, "t0", "5154:", "5155:");
    assert.deepEqual(r.impairment, { delayUs: 10_000, rateBit: 1_000_000 });
    assert.equal(rootMatches({ delayUs: 10_000, rateBit: 1_000_000 }, r), true);
    // The ifb's default fq_codel (handle 0:) is no root of anyone's.
    assert.equal(observedRoot(all, "qi0", "5154:", "5155:").root, "none");
    assert.deepEqual(parseFilters(FIX.filter!), [{ pref: 5154, kind: "u32", redirectTo: "qi0" }]);
  });

  test("another root qdisc is foreign", () => {
    const q = parseQdiscs('[{"kind":"htb","handle":"1:","dev":"t0","root":true,"options":{}}]');
    assert.equal(observedRoot(q, "t0", "5154:", "5155:").root, "foreign");
  });
});

describe("the impair kind's diff", () => {
  const env = (l: Lab): PlanEnv => ({
    lab: l,
    stateDir: "/run/qnet/t",
    dataDir: "/var/lib/qnet-test",
    cold: false,
    netns: null,
    vms: false,
    machine: { kvm: false, vhost: false },
    bridgeNfPerNetns: true,
    rootless: null,
  });

  test("a kernel without netem is a problem, named with how qnet knows; rate alone is not", () => {
    const l = compile(lab("{ delay: 40ms }")).lab;
    const obs = emptyObservation(null, true);
    obs.qdiscs = [];
    obs.kernelFeatures.set("sch_netem", {
      state: "absent",
      source: "/proc/config.gz: CONFIG_NET_SCH_NETEM is not set",
    });
    const p = impairKind.diff(impairKind.desired(env(l)), obs, env(l));
    assert.match(
      p.problems![0]!,
      /no sch_netem \(\/proc\/config\.gz: CONFIG_NET_SCH_NETEM is not set\)/,
    );
    const r = compile(lab("{ rate: 1mbit }")).lab;
    assert.deepEqual(impairKind.diff(impairKind.desired(env(r)), obs, env(r)).problems, []);
  });

  test("a tap that does not exist yet: both directions are planned, journaled with their undo", () => {
    const l = compile(lab("{ rate: 1mbit }")).lab;
    const p = impairKind.diff(impairKind.desired(env(l)), emptyObservation(null, true), env(l));
    assert.equal(p.verdicts.length, 1);
    const v = p.verdicts[0]!;
    assert.equal(v.state, "missing");
    assert.deepEqual(
      v.actions.map((a) => a.undo),
      [
        { kind: "qdisc", dev: v.name, parent: "root" },
        { kind: "qdisc", dev: v.name, parent: "ingress" },
      ],
    );
  });

  test("live changes replace the topology's, {} clears, and changedImpairment keeps the other fields", () => {
    const l = compile(lab("{ rate: 1mbit }")).lab;
    const live = withLiveImpairments(l, { nics: { "vm0:0": {}, "vm1:0": { delayUs: 5000 } } });
    assert.deepEqual(
      impairedTaps(live).map((t) => [t.vm, t.impair]),
      [
        ["vm0", null],
        ["vm1", { delayUs: 5000 }],
      ],
    );
    assert.deepEqual(changedImpairment({ rateBit: 1e6 }, { delay: "40ms" }), {
      delayUs: 40_000,
      rateBit: 1e6,
    });
    assert.deepEqual(changedImpairment({ rateBit: 1e6 }, { clear: true }), {});
    assert.throws(
      () => changedImpairment({}, { jitter: "5ms" }),
      /--jitter: jitter varies a delay/,
    );
  });

  test("the diagram shows a NIC's impairment", () => {
    assert.match(
      renderAscii(compile(lab("{ delay: 40ms, loss: 1% }")).lab),
      /vm0 .* impaired: delay 40ms, loss 1%/,
    );
  });
});

describe("check: loss in force is named as the cause", () => {
  test("a failed ping between VMs whose NIC drops every frame", () => {
    const l = compile(lab("{ loss: 100% }")).lab;
    const r = {
      id: "p1",
      kind: "vm-vm",
      from: "vm1",
      to: "vm0",
      network: "lan",
      address: "10.0.9.2",
      port: null,
      status: "fail",
      latencyMs: null,
      detail: "no reply within 2 s",
      cause: null,
      source: "10.0.9.3",
      forward: null,
      ends: [{ vm: "vm0", network: "lan" }],
      blocked: null,
    } as unknown as PairResult;
    const live = {
      vms: l.vms.map((v) => ({
        name: v.name,
        state: "running" as const,
        pid: 1,
        detail: "",
        nics: [
          {
            nic: 0,
            network: "lan",
            ifname: "eth0",
            mac: v.nics[0]!.mac,
            ipv4: [`${v.nics[0]!.ip}/24`],
          },
        ],
        agentError: null,
      })),
    };
    const [x] = explainFailures([r], { lab: l, live, status: [], doctor: [] });
    assert.match(
      x!.cause!,
      /vm0 nic 0 is impaired \(loss 100%, each direction\): every frame is dropped on purpose; `qnet impair t vm0:0 --clear` removes it/,
    );
  });
});
