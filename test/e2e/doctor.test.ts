// qnet doctor against real state: a test namespace (iptables, nft, sysctls, listeners, routes) and temp trees.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { execa, type ResultPromise } from "execa";
import { runDoctor } from "../../src/doctor/index.js";
import type { CheckResult, DoctorEnv, DoctorReport } from "../../src/doctor/types.js";
import { ProcessRunner } from "../../src/host/runner.js";
import { compileTopology } from "../../src/load/compile.js";
import type { Lab } from "../../src/model/lab.js";

const NS = `qnt-doctor-${process.pid}`;
const tmp = mkdtempSync(join(tmpdir(), "qnt-doctor-"));
const runner = new ProcessRunner(NS);
const listeners: ResultPromise[] = [];

function sh(...argv: string[]): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
}
const inNs = (...argv: string[]) => sh("ip", "netns", "exec", NS, ...argv);

function lab(yaml: string): Lab {
  return compileTopology(yaml, "test.yaml").lab;
}
const SERVICES = lab(readFileSync("examples/services.yaml", "utf8"));
const USER_FWD = lab(readFileSync("examples/user-forward.yaml", "utf8"));
const PRIVATE = lab(readFileSync("examples/private-lan.yaml", "utf8"));

/** Safe defaults for every test: nothing is written outside tmp. */
function env(extra: Partial<DoctorEnv> = {}): Partial<DoctorEnv> {
  return {
    sysctlDir: join(tmp, "sysctl.d"),
    udevRulesDir: join(tmp, "rules.d"),
    bridgeConf: join(tmp, "none", "bridge.conf"),
    networkdLinksDir: join(tmp, "none"),
    ...extra,
  };
}

async function doctor(
  l: Lab | undefined,
  extra: Partial<DoctorEnv> = {},
  fix = false,
): Promise<DoctorReport> {
  return runDoctor({ ...(l ? { lab: l } : {}), runner, fix, env: env(extra) });
}
function byId(r: DoctorReport, id: string): CheckResult {
  const c = r.checks.find((x) => x.id === id);
  assert.ok(c, `no check ${id} in ${r.checks.map((x) => x.id).join(", ")}`);
  return c;
}

/** Start a node listener inside the namespace and wait until ss sees it. */
async function listen(proto: "tcp" | "udp", addr: string, port: number): Promise<number> {
  const code =
    proto === "tcp"
      ? `require("net").createServer().listen(${port}, "${addr}")`
      : `require("dgram").createSocket("udp4").bind(${port}, "${addr}")`;
  const p = execa("ip", ["netns", "exec", NS, "node", "-e", code], { reject: false });
  listeners.push(p);
  for (let i = 0; i < 100; i++) {
    const out = inNs("ss", proto === "tcp" ? "-Htlnp" : "-Hulnp");
    if (out.includes(`:${port} `) && out.includes(`pid=${p.pid}`)) return p.pid!;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`listener on ${port} did not appear`);
}
function stop(pid: number): void {
  const p = listeners.find((x) => x.pid === pid);
  p?.kill("SIGTERM");
}

before(() => {
  sh("ip", "netns", "add", NS);
  sh("ip", "-n", NS, "link", "set", "lo", "up");
});
after(async () => {
  for (const p of listeners) {
    p.kill("SIGKILL");
    await p;
  }
  try {
    sh("ip", "netns", "del", NS);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

describe("FORWARD drop policy", () => {
  it("passes in a namespace with no drop", async () => {
    const c = byId(await doctor(SERVICES), "forward-policy");
    assert.equal(c.status, "pass");
    assert.match(c.detail, /No FORWARD drop .*looked at .*nftables/);
  });

  it("finds iptables -P FORWARD DROP, then attributes it to Docker and says qnet covers it in DOCKER-USER", async () => {
    inNs("iptables-nft", "-P", "FORWARD", "DROP");
    try {
      let c = byId(await doctor(SERVICES), "forward-policy");
      assert.equal(c.status, "warn");
      assert.match(
        c.detail,
        /iptables-nft \(policy DROP on FORWARD\) set by hand or an unknown tool/,
      );
      assert.match(c.detail, /accept rules .* are in iptables-nft FORWARD: `qnet up` inserts them/);
      inNs("iptables-nft", "-N", "DOCKER");
      inNs("iptables-nft", "-N", "DOCKER-USER");
      inNs("iptables-nft", "-A", "FORWARD", "-j", "DOCKER-USER");
      c = byId(await doctor(SERVICES), "forward-policy");
      assert.equal(c.status, "warn");
      assert.match(c.detail, /set by Docker/);
      assert.match(c.detail, /iptables-nft DOCKER-USER/);
      assert.match(
        c.detail,
        new RegExp(SERVICES.networks[0]!.type === "bridge" ? SERVICES.networks[0]!.bridge : "x"),
      );
      // Not a nftables finding twice: iptables-nft's own table is reported once.
      assert.doesNotMatch(c.detail, /nftables \(table ip filter/);
      // A user-network-only lab does not care.
      assert.equal(byId(await doctor(USER_FWD), "forward-policy").status, "pass");
    } finally {
      inNs("iptables-nft", "-F", "FORWARD");
      inNs("iptables-nft", "-X");
      inNs("iptables-nft", "-P", "FORWARD", "ACCEPT");
    }
    assert.equal(byId(await doctor(SERVICES), "forward-policy").status, "pass");
  });

  it("finds a drop in iptables-legacy", async () => {
    inNs("iptables-legacy", "-P", "FORWARD", "DROP");
    try {
      const c = byId(await doctor(SERVICES), "forward-policy");
      assert.equal(c.status, "warn");
      assert.match(c.detail, /iptables-legacy \(policy DROP/);
    } finally {
      inNs("iptables-legacy", "-P", "FORWARD", "ACCEPT");
    }
  });

  it("warns on an nftables base chain with policy drop, naming its owner; qnet's rules go into that chain", async () => {
    inNs(
      "nft",
      "add table inet qtfw; add chain inet qtfw fwdchain { type filter hook forward priority 0; policy drop; }",
    );
    try {
      let c = byId(await doctor(SERVICES), "forward-policy");
      const br = SERVICES.networks[0]!.type === "bridge" ? SERVICES.networks[0]!.bridge : "";
      assert.equal(c.status, "warn");
      assert.match(c.detail, /table inet qtfw, base chain fwdchain/);
      assert.match(
        c.detail,
        new RegExp(`accept rules for ${br} are in nftables inet qtfw fwdchain`),
      );
      assert.match(c.fix!, /^qnet up /);
      inNs("nft", "delete table inet qtfw");
      inNs(
        "nft",
        "add table inet firewalld; add chain inet firewalld filter_FORWARD { type filter hook forward priority 10; policy drop; }",
      );
      c = byId(await doctor(SERVICES), "forward-policy");
      assert.equal(c.status, "warn");
      assert.match(c.detail, /set by firewalld/);
      assert.match(c.detail, /nftables inet firewalld filter_FORWARD/);
    } finally {
      inNs("nft", "flush ruleset");
    }
  });
});

describe("bridge-nf-call sysctls and the persistent fix", () => {
  const read = (k: string) => inNs("cat", `/proc/sys/net/bridge/${k}`).trim();

  it("warns when on without a drop, fails with a drop, passes when off", async () => {
    inNs("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1");
    let c = byId(await doctor(PRIVATE), "bridge-nf-call");
    assert.equal(c.status, "warn");
    assert.match(c.detail, /bridge-nf-call-iptables/);
    assert.match(c.fix!, /sysctl -w net.bridge.bridge-nf-call-iptables=0/);
    inNs("iptables-nft", "-P", "FORWARD", "DROP");
    try {
      c = byId(await doctor(PRIVATE), "bridge-nf-call");
      assert.equal(c.status, "fail");
      assert.match(c.detail, /FORWARD drops \(iptables-nft/);
    } finally {
      inNs("iptables-nft", "-P", "FORWARD", "ACCEPT");
    }
    for (const k of ["ip6tables", "iptables", "arptables"])
      inNs("sysctl", "-q", "-w", `net.bridge.bridge-nf-call-${k}=0`);
    assert.equal(byId(await doctor(PRIVATE), "bridge-nf-call").status, "pass");
  });

  it("passes when br_netfilter is absent (fake procRoot: no sys/net/bridge)", async () => {
    const proc = join(tmp, "proc-nobr");
    mkdirSync(join(proc, "sys/net/ipv4"), { recursive: true });
    writeFileSync(join(proc, "sys/net/ipv4/ip_forward"), "0\n");
    const r = await doctor(PRIVATE, { procRoot: proc });
    const c = byId(r, "bridge-nf-call");
    assert.equal(c.status, "pass");
    assert.match(c.detail, /not loaded/);
  });

  it("--fix turns the sysctls off in the namespace and writes the sysctl.d file and udev rule", async () => {
    const dirs = {
      sysctlDir: join(tmp, "fix", "sysctl.d"),
      udevRulesDir: join(tmp, "fix", "rules.d"),
    };
    inNs("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1");
    inNs("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-arptables=1");
    let r = await doctor(PRIVATE, dirs);
    assert.equal(byId(r, "bridge-nf-call.persistent").status, "warn");
    assert.match(byId(r, "bridge-nf-call.persistent").detail, /bridge-filter.conf is missing/);
    r = await doctor(PRIVATE, dirs, true);
    const nf = byId(r, "bridge-nf-call");
    assert.equal(nf.status, "pass");
    assert.match(
      nf.fixed!,
      new RegExp(
        `net.bridge.bridge-nf-call-iptables, net.bridge.bridge-nf-call-arptables to 0 in namespace ${NS}`,
      ),
    );
    assert.equal(read("bridge-nf-call-iptables"), "0");
    assert.equal(read("bridge-nf-call-arptables"), "0");
    const p = byId(r, "bridge-nf-call.persistent");
    assert.equal(p.status, "pass");
    const conf = join(dirs.sysctlDir, "bridge-filter.conf");
    assert.equal(
      p.fixed,
      `wrote ${conf}; wrote ${join(dirs.udevRulesDir, "99-bridge-filter.rules")}`,
    );
    assert.equal(
      readFileSync(conf, "utf8"),
      "net.bridge.bridge-nf-call-ip6tables=0\nnet.bridge.bridge-nf-call-iptables=0\nnet.bridge.bridge-nf-call-arptables=0\n",
    );
    assert.equal(
      readFileSync(join(dirs.udevRulesDir, "99-bridge-filter.rules"), "utf8"),
      `ACTION=="add", SUBSYSTEM=="module", KERNEL=="br_netfilter", RUN+="/sbin/sysctl -p ${conf}"\n`,
    );
    // The written file is what sysctl -p accepts.
    inNs("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1");
    inNs("sysctl", "-q", "-p", conf);
    assert.equal(read("bridge-nf-call-iptables"), "0");
    // A second run finds everything in place and changes nothing.
    r = await doctor(PRIVATE, dirs, true);
    assert.equal(byId(r, "bridge-nf-call.persistent").fixed, undefined);
    assert.equal(byId(r, "bridge-nf-call.persistent").status, "pass");
  });

  it("--fix leaves an admin's different bridge-filter.conf alone", async () => {
    const dirs = {
      sysctlDir: join(tmp, "own", "sysctl.d"),
      udevRulesDir: join(tmp, "own", "rules.d"),
    };
    mkdirSync(dirs.sysctlDir, { recursive: true });
    writeFileSync(
      join(dirs.sysctlDir, "bridge-filter.conf"),
      "net.bridge.bridge-nf-call-iptables=1\n",
    );
    const c = byId(await doctor(PRIVATE, dirs, true), "bridge-nf-call.persistent");
    assert.equal(c.status, "warn");
    assert.match(c.detail, /does not set all three/);
    assert.equal(
      readFileSync(join(dirs.sysctlDir, "bridge-filter.conf"), "utf8"),
      "net.bridge.bridge-nf-call-iptables=1\n",
    );
  });
});

describe("ip_forward", () => {
  it("warns for a NAT lab when off, passes when on or when nothing routes", async () => {
    inNs("sysctl", "-q", "-w", "net.ipv4.ip_forward=0");
    const c = byId(await doctor(SERVICES), "ip-forward");
    assert.equal(c.status, "warn");
    assert.match(c.detail, /network lan \(NAT and forwards\)/);
    assert.equal(byId(await doctor(PRIVATE), "ip-forward").status, "pass");
    inNs("sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
    try {
      assert.equal(byId(await doctor(SERVICES), "ip-forward").status, "pass");
    } finally {
      inNs("sysctl", "-q", "-w", "net.ipv4.ip_forward=0");
    }
  });
});

describe("ports", () => {
  it("names the process holding a user-network forward's host port", async () => {
    assert.equal(byId(await doctor(USER_FWD), "ports.forwards").status, "pass");
    const pid = await listen("tcp", "127.0.0.1", 2222);
    try {
      const c = byId(await doctor(USER_FWD), "ports.forwards");
      assert.equal(c.status, "fail");
      assert.match(
        c.detail,
        new RegExp(`tcp:2222:22 on usernet: tcp 127.0.0.1:2222 is held by node \\(pid ${pid}\\)`),
      );
      assert.match(c.fix!, new RegExp(`kill ${pid}`));
    } finally {
      stop(pid);
    }
  });

  it("warns for a bridge-network forward port that is taken on 0.0.0.0", async () => {
    const pid = await listen("tcp", "0.0.0.0", 8022);
    try {
      const c = byId(await doctor(SERVICES), "ports.forwards");
      assert.equal(c.status, "warn");
      assert.match(c.detail, new RegExp(`node \\(pid ${pid}\\)`));
    } finally {
      stop(pid);
    }
  });

  it("fails when port 53 is taken on 0.0.0.0 where a bridge runs DNS", async () => {
    assert.equal(byId(await doctor(SERVICES), "ports.dns-dhcp").status, "pass");
    const pid = await listen("udp", "0.0.0.0", 53);
    try {
      const c = byId(await doctor(SERVICES), "ports.dns-dhcp");
      assert.equal(c.status, "fail");
      assert.match(c.detail, new RegExp(`udp 0.0.0.0:53 is held by node \\(pid ${pid}\\)`));
      // A listener on another address (127.0.0.1) does not collide with the gateway.
    } finally {
      stop(pid);
    }
    const other = await listen("udp", "127.0.0.1", 53);
    try {
      assert.equal(byId(await doctor(SERVICES), "ports.dns-dhcp").status, "pass");
    } finally {
      stop(other);
    }
  });
});

describe("routes", () => {
  it("fails when a namespace route overlaps a lab subnet", async () => {
    assert.equal(byId(await doctor(SERVICES), "routes").status, "pass");
    // No dummy module on this kernel: a veth pair stands in for any interface.
    inNs("ip", "link", "add", "qd0", "type", "veth", "peer", "name", "qd1");
    try {
      inNs("ip", "addr", "add", "10.10.0.200/16", "dev", "qd0");
      inNs("ip", "link", "set", "qd0", "up");
      const c = byId(await doctor(SERVICES), "routes");
      assert.equal(c.status, "fail");
      assert.match(c.detail, /lan 10\.10\.0\.0\/24 overlaps 10\.10\.0\.0\/16 dev qd0/);
    } finally {
      inNs("ip", "link", "del", "qd0");
    }
  });
});

describe("qemu-bridge-helper", () => {
  const userLab = lab(
    "name: u\nuser: nobody\nnetworks:\n  lan: { type: bridge, bridge: qbr0, subnet: 10.77.0.0/24 }\nvms:\n  vm0: { nics: [{ network: lan }] }\n",
  );
  const helper = join(tmp, "qemu-bridge-helper");
  before(() => {
    writeFileSync(helper, "#!/bin/sh\n");
    chmodSync(helper, 0o4755);
  });

  it("skips without a lab user", async () => {
    assert.equal(byId(await doctor(PRIVATE), "bridge-helper").status, "skip");
  });

  it("warns when bridge.conf lacks the bridge, passes once an included file allows it", async () => {
    const conf = join(tmp, "bridge.conf");
    writeFileSync(conf, "allow virbr0\n");
    let c = byId(
      await doctor(userLab, { bridgeConf: conf, bridgeHelper: helper }),
      "bridge-helper",
    );
    assert.equal(c.status, "warn");
    assert.match(c.detail, new RegExp(`${conf} does not allow qbr0`));
    assert.equal(c.fix, `mkdir -p ${tmp} && echo 'allow qbr0' >> ${conf}`);
    writeFileSync(join(tmp, "more.conf"), "allow qbr0\n");
    writeFileSync(conf, `allow virbr0\ninclude ${join(tmp, "more.conf")}\n`);
    c = byId(await doctor(userLab, { bridgeConf: conf, bridgeHelper: helper }), "bridge-helper");
    assert.equal(c.status, "pass");
    writeFileSync(conf, `include ${join(tmp, "more.conf")}\ndeny all\n`);
    assert.equal(
      byId(await doctor(userLab, { bridgeConf: conf, bridgeHelper: helper }), "bridge-helper")
        .status,
      "warn",
    );
  });

  it("warns when the helper is not setuid", async () => {
    const plain = join(tmp, "helper-plain");
    writeFileSync(plain, "");
    chmodSync(plain, 0o755);
    const conf = join(tmp, "all.conf");
    writeFileSync(conf, "allow all\n");
    const c = byId(
      await doctor(userLab, { bridgeConf: conf, bridgeHelper: plain }),
      "bridge-helper",
    );
    assert.equal(c.status, "warn");
    assert.match(c.detail, /is not setuid root/);
    assert.equal(c.fix, `chown root ${plain} && chmod u+s ${plain}`);
  });
});

describe("QEMU", () => {
  it("passes for the examples' models and fails on a NIC model QEMU lacks", async () => {
    let r = await doctor(USER_FWD);
    assert.equal(byId(r, "qemu.binary").status, "pass");
    assert.match(byId(r, "qemu.binary").detail, /QEMU \d+\.\d+/);
    assert.equal(byId(r, "qemu.netdev").status, "pass");
    assert.equal(byId(r, "qemu.nic-models").status, "pass");
    r = await doctor(
      lab(
        "name: m\nnetworks:\n  n: { type: user }\nvms:\n  vm0: { nics: [{ network: n, model: no-such-nic }] }\n",
      ),
    );
    const c = byId(r, "qemu.nic-models");
    assert.equal(c.status, "fail");
    assert.match(c.detail, /no NIC model no-such-nic \(used by vm0 nic 0\)/);
    assert.match(c.fix!, /virtio-net-pci/);
  });

  it("fails when the binary is missing", async () => {
    const r = await doctor(
      lab(
        "name: m\nnetworks:\n  n: { type: user }\nvms:\n  vm0: { nics: [{ network: n }], qemu: { binary: qnt-no-such-qemu } }\n",
      ),
    );
    const c = byId(r, "qemu.binary");
    assert.equal(c.status, "fail");
    assert.match(c.detail, /qnt-no-such-qemu \(used by vm0\) is not installed/);
  });
});

describe("devices (temp /dev tree with real device nodes)", () => {
  const dev = join(tmp, "dev");
  before(() => {
    mkdirSync(join(dev, "net"), { recursive: true });
    sh("mknod", "-m", "0666", join(dev, "net/tun"), "c", "10", "200");
    sh("mknod", "-m", "0660", join(dev, "kvm"), "c", "10", "232");
    writeFileSync(join(dev, "vhost-net"), ""); // a plain file, not a device
  });
  const nobodyLab = lab(
    "name: d\nuser: nobody\nnetworks:\n  lan: { type: bridge, subnet: 10.78.0.0/24 }\nvms:\n  vm0: { nics: [{ network: lan }] }\n",
  );

  it("checks usability for the lab user: tun ok, kvm denied, vhost-net not a device", async () => {
    const r = await doctor(nobodyLab, { devRoot: dev });
    assert.equal(byId(r, "dev.tun").status, "pass");
    const kvm = byId(r, "dev.kvm");
    assert.equal(kvm.status, "warn");
    assert.match(kvm.detail, /nobody cannot read and write .*kvm \(mode 0660, group root\)/);
    assert.equal(kvm.fix, "usermod -aG root nobody");
    const vh = byId(r, "dev.vhost-net");
    assert.equal(vh.status, "warn");
    assert.match(vh.detail, /is not a character device/);
  });

  it("passes for root (the current user), and a missing tun fails only when taps are needed", async () => {
    let r = await doctor(PRIVATE, { devRoot: dev });
    assert.equal(byId(r, "dev.kvm").status, "pass");
    const empty = join(tmp, "dev-empty");
    mkdirSync(empty, { recursive: true });
    r = await doctor(PRIVATE, { devRoot: empty });
    assert.equal(byId(r, "dev.tun").status, "fail");
    assert.equal(byId(r, "dev.tun").fix, "modprobe tun");
    r = await doctor(USER_FWD, { devRoot: empty });
    assert.equal(byId(r, "dev.tun").status, "pass");
    assert.match(byId(r, "dev.tun").detail, /only uses user networks/);
  });
});

describe("bridged uplink", () => {
  const bridged = (up: string) =>
    lab(
      `name: b\nnetworks:\n  lan: { type: bridged, uplink: ${up}, bridge: qbr1 }\nvms:\n  vm0: { nics: [{ network: lan }] }\n`,
    );

  it("passes for a wired interface in the namespace and fails for a missing one", async () => {
    inNs("ip", "link", "add", "qup0", "type", "veth", "peer", "name", "qup1");
    try {
      assert.equal(byId(await doctor(bridged("qup0")), "uplink.lan").status, "pass");
    } finally {
      inNs("ip", "link", "del", "qup0");
    }
    const c = byId(await doctor(bridged("qup0")), "uplink.lan");
    assert.equal(c.status, "fail");
    assert.match(c.detail, /does not exist/);
  });

  it("fails for a wireless uplink (fake sysRoot tree)", async () => {
    const sys = join(tmp, "sys");
    mkdirSync(join(sys, "class/net/wlq0/phy80211"), { recursive: true });
    const c = byId(await doctor(bridged("wlq0"), { sysRoot: sys }), "uplink.lan");
    assert.equal(c.status, "fail");
    assert.match(c.detail, /wireless/);
  });

  it("warns when systemd-networkd manages the uplink (fake sysRoot and links dir, host runner reads only)", async () => {
    const sys = join(tmp, "sys2");
    mkdirSync(join(sys, "class/net/enq0"), { recursive: true });
    writeFileSync(join(sys, "class/net/enq0/ifindex"), "7\n");
    const links = join(tmp, "links");
    mkdirSync(links, { recursive: true });
    const hostRunner = new ProcessRunner(null);
    const run = () =>
      runDoctor({
        lab: bridged("enq0"),
        runner: hostRunner,
        env: env({ sysRoot: sys, networkdLinksDir: links }),
      });
    assert.equal(byId(await run(), "uplink.lan").status, "pass");
    writeFileSync(
      join(links, "7"),
      "# This is private data. Do not parse.\nADMIN_STATE=configured\nOPER_STATE=routable\n",
    );
    const c = byId(await run(), "uplink.lan");
    assert.equal(c.status, "warn");
    assert.match(c.detail, /systemd-networkd \(ADMIN_STATE=configured\)/);
  });
});
