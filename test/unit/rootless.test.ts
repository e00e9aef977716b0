// Rootless labs, the pure parts: where each kind stands, the refusals (located), the lab as a rootless run
// sees it, the helper's argv, the NAT table and dnsmasq configuration inside, the state root, doctor.
import assert from "node:assert/strict";
import { chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { APPARMOR_PROFILE, usernsFindings } from "../../src/doctor/rootless.js";
import { emptyObservation } from "../../src/facts/types.js";
import { planLab } from "../../src/kinds/index.js";
import { ROOTLESS_RULES, rootlessLab, rootlessRefusals } from "../../src/kinds/rootless.js";
import { compileTopology } from "../../src/load/compile.js";
import type { BridgeNetwork } from "../../src/model/lab.js";
import { renderDnsmasqConf } from "../../src/render/dnsmasq-conf.js";
import { renderNftRuleset } from "../../src/render/nftables.js";
import {
  HELPER_IFNAME,
  helperProblems,
  helperReason,
  pastaArgv,
  planHelper,
  slirpArgv,
  slirpForwardRequests,
} from "../../src/render/rootless-helper.js";
import { ensurePrivateRoot, userStateRoot } from "../../src/rootless/state-root.js";
import { env, exampleLab } from "./host-fixtures.js";

const lab = (text: string) => compileTopology(text, "lab.yaml").lab;

describe("where each kind stands in a rootless lab", () => {
  test("host-only kinds are refused or skipped, each with its reason", () => {
    assert.equal(ROOTLESS_RULES.uplink.rule, "refuse");
    assert.equal(ROOTLESS_RULES.macvtap.rule, "refuse");
    assert.equal(ROOTLESS_RULES.vxlan.rule, "refuse");
    assert.equal(ROOTLESS_RULES["nm-unmanaged"].rule, "skip");
    assert.equal(ROOTLESS_RULES.firewall.rule, "skip");
    assert.equal(ROOTLESS_RULES.hosts.rule, "skip");
    assert.equal(ROOTLESS_RULES.module.rule, "observe");
    for (const k of ["bridge", "tap", "dnsmasq", "nft-table", "vm"] as const)
      assert.equal(ROOTLESS_RULES[k].rule, "same");
  });

  test("a bridged network is refused once, at its type field, with the reason and the alternative", () => {
    const r = rootlessRefusals(exampleLab("lan-bridge.yaml"));
    assert.equal(r.length, 1);
    assert.deepEqual(r[0]!.path, ["networks", "lan", "type"]);
    assert.match(r[0]!.message, /^network lan \(type: bridged, uplink eth0\) cannot run rootless/);
    assert.match(r[0]!.message, /the host's LAN interface belongs to root/);
    assert.match(r[0]!.message, /use a `user` network .*or run qnet as root/);
  });

  test("private and services labs are not refused", () => {
    assert.deepEqual(rootlessRefusals(exampleLab("private-lan.yaml")), []);
    assert.deepEqual(rootlessRefusals(exampleLab("services.yaml")), []);
  });

  test("planned inside: no netns, firewall or hosts verdicts; the skips are notes; refusals are problems", () => {
    const svc = rootlessLab(exampleLab("services.yaml")).lab;
    const e = { ...env(svc), rootless: { publishedVia: HELPER_IFNAME } };
    const plan = planLab(e, emptyObservation(null, true));
    const kinds = new Set(plan.verdicts.map((v) => v.kind));
    for (const k of ["netns", "firewall", "hosts", "nm-unmanaged"])
      assert.ok(!kinds.has(k as never), k);
    for (const k of ["bridge", "tap", "dnsmasq", "nft-table"]) assert.ok(kinds.has(k as never), k);
    assert.ok(plan.notes.some((n) => /^rootless: no hosts: `dns: host`/.test(n)));
    // Observed, never changed: a kernel module the host lacks is a problem naming root's one command.
    assert.deepEqual(
      plan.problems.map((p) => p.split(":")[0]),
      ["module bridge", "module tun"],
    );
    assert.ok(plan.problems.every((p) => /needs root on the host: ask root .*modprobe/.test(p)));
    const bridged = exampleLab("lan-bridge.yaml");
    const p2 = planLab(
      { ...env(bridged), rootless: { publishedVia: null } },
      emptyObservation(null, true),
    );
    assert.ok(p2.problems.some((p) => /cannot run rootless/.test(p)));
  });

  test("the lab as a rootless run sees it: no netns, no tap owner, NAT without the host's uplink", () => {
    const { lab: l, notes } = rootlessLab(
      lab(`
name: x
netns: ns1
networks:
  lan: { type: bridge, subnet: 10.9.0.0/24, nat: true, uplink: eth0 }
vms:
  vm0: { user: alice, nics: [{ network: lan }] }
`),
    );
    assert.equal(l.netns, null);
    assert.equal(l.vms[0]!.user, null);
    assert.equal((l.networks[0] as BridgeNetwork).uplink, null);
    assert.equal(notes.length, 3);
  });
});

describe("the helper (pasta or slirp4netns)", () => {
  const svc = exampleLab("services.yaml");

  test("needed for NAT and forwards, not for a private network", () => {
    assert.equal(helperReason(exampleLab("private-lan.yaml")), null);
    assert.equal(helperReason(svc), "NAT, forwards");
  });

  test("pasta: the published forward on the loopback, no way to the user's own ports", () => {
    const plan = planHelper(svc, "pasta", "/tmp/qnet-1000/svc")!;
    assert.equal(plan.address, "10.0.2.100");
    const argv = pastaArgv(plan, 4242);
    assert.deepEqual(argv.slice(-1), ["4242"]);
    const at = (flag: string) => argv[argv.indexOf(flag) + 1];
    assert.equal(at("--tcp-ports"), "127.0.0.1/8022");
    assert.equal(at("--udp-ports"), "none");
    assert.equal(at("--tcp-ns"), "none");
    assert.equal(at("--ns-ifname"), HELPER_IFNAME);
    assert.equal(at("--pid"), "/tmp/qnet-1000/svc/pasta.pid");
    assert.ok(argv.includes("--no-map-gw"));
    assert.ok(!argv.includes("--runas"));
    assert.deepEqual(pastaArgv(plan, 1, { asRoot: true }).slice(-8, -6), ["--runas", "0"]);
  });

  test("slirp4netns: the API socket and one add_hostfwd per forward", () => {
    const plan = planHelper(svc, "slirp4netns", "/s")!;
    const argv = slirpArgv(plan, 77);
    assert.ok(argv.includes("--api-socket=/s/slirp4netns.sock"));
    assert.ok(argv.includes("--disable-host-loopback"));
    assert.ok(argv.includes("--cidr=10.0.2.0/24"));
    assert.ok(argv.includes("--userns-path=/proc/77/ns/user"));
    assert.deepEqual(slirpForwardRequests(plan), [
      {
        execute: "add_hostfwd",
        arguments: {
          proto: "tcp",
          host_addr: "127.0.0.1",
          host_port: 8022,
          guest_addr: "10.0.2.100",
          guest_port: 8022,
        },
      },
    ]);
  });

  test("the helper's link avoids the lab's subnets; a host port published twice is a problem", () => {
    const l = lab(`
name: x
networks:
  a: { type: bridge, subnet: 10.0.2.0/24, nat: true, forwards: ["tcp:80:vm0:80", "tcp:127.0.0.2:80:vm0:81"] }
vms:
  vm0: { nics: [{ network: a }] }
`);
    assert.equal(planHelper(l, "pasta", "/s")!.address, "10.0.3.100");
    assert.equal(helperProblems(l, "pasta").length, 1);
    assert.match(helperProblems(l, "pasta")[0]!, /both publish tcp port 80/);
  });
});

describe("inside the lab's namespaces", () => {
  const svc = rootlessLab(exampleLab("services.yaml")).lab;

  test("published ports arriving from the helper are forwarded to the VM", () => {
    const text = renderNftRuleset(svc, {
      defaultUplink: HELPER_IFNAME,
      publishedVia: HELPER_IFNAME,
    })!;
    assert.match(text, /iifname "qnext0" tcp dport 8022 dnat to 10\.10\.0\.2:22/);
    assert.match(text, /oifname "qnext0" .*masquerade|masquerade/);
    const plain = renderNftRuleset(svc, { defaultUplink: HELPER_IFNAME })!;
    assert.doesNotMatch(plain, /iifname "qnext0"/);
  });

  test("dnsmasq keeps the user's identity (no nobody, no dip inside)", () => {
    const net = svc.networks[0] as BridgeNetwork;
    const conf = renderDnsmasqConf(svc, net, "/s", { rootless: true });
    assert.match(conf, /^user=$/m);
    assert.match(conf, /^group=$/m);
    assert.doesNotMatch(renderDnsmasqConf(svc, net, "/s"), /^user=$/m);
  });
});

describe("the state root", () => {
  test("$XDG_RUNTIME_DIR/qnet, else /tmp/qnet-<uid>", () => {
    assert.equal(userStateRoot(1000, { XDG_RUNTIME_DIR: "/run/user/1000" }), "/run/user/1000/qnet");
    assert.equal(userStateRoot(1000, {}), "/tmp/qnet-1000");
    assert.equal(userStateRoot(1000, { XDG_RUNTIME_DIR: "relative" }), "/tmp/qnet-1000");
  });

  test("made 0700; tightened; refused when another user owns it or it is a symlink", () => {
    const tmp = mkdtempSync(join(tmpdir(), "qnt-rl-root-"));
    try {
      const mine = join(tmp, "mine");
      ensurePrivateRoot(mine, process.getuid!());
      assert.equal(statSync(mine).mode & 0o777, 0o700);
      const loose = join(tmp, "loose");
      mkdirSync(loose, { mode: 0o755 });
      ensurePrivateRoot(loose, process.getuid!());
      assert.equal(statSync(loose).mode & 0o777, 0o700);
      const theirs = join(tmp, "theirs");
      mkdirSync(theirs, { mode: 0o700 });
      if (process.getuid!() === 0) chownSync(theirs, 1, 1);
      assert.throws(
        () => ensurePrivateRoot(theirs, 4242),
        /owned by uid \d+, not by you \(uid 4242\)/,
      );
      const link = join(tmp, "link");
      symlinkSync(mine, link);
      assert.throws(() => ensurePrivateRoot(link, process.getuid!()), /not a directory/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("doctor's rootless section", () => {
  test("each switch that forbids user namespaces is named with its fix", () => {
    assert.deepEqual(
      usernsFindings({
        maxUserNamespaces: "15000",
        unprivilegedClone: null,
        apparmorRestrict: null,
      }),
      [],
    );
    const f = usernsFindings({
      maxUserNamespaces: "0",
      unprivilegedClone: "0",
      apparmorRestrict: "1",
    });
    assert.deepEqual(
      f.map((x) => [x.id, x.status]),
      [
        ["rootless.userns", "fail"],
        ["rootless.userns.debian", "fail"],
        ["rootless.userns.apparmor", "warn"],
      ],
    );
    assert.match(f[0]!.fix!, /sysctl -w user\.max_user_namespaces=15000/);
    assert.match(f[1]!.fix!, /sysctl -w kernel\.unprivileged_userns_clone=1/);
    assert.ok(f[2]!.fix!.includes(APPARMOR_PROFILE));
    assert.match(APPARMOR_PROFILE, /userns,/);
  });
});
