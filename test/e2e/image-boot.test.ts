// Real Debian guests with real cloud-init: the seed's sections 1 and 3 with the built image, reached by OpenSSH.
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeCloudInitSeed } from "../../src/host/cloud-init-seed.js";
import { sha256File } from "../../src/image/build.js";
import { waitCloudInit, waitGuestLogin } from "../../src/image/guest-ready.js";
import { createOverlay, diskInfo } from "../../src/image/qemu-img.js";
import type { ResolvedImage } from "../../src/image/resolve.js";
import type { Lab } from "../../src/model/lab.js";
import { dnsmasqPaths, renderDnsmasqConf } from "../../src/render/dnsmasq-conf.js";
import { hostKeyAlias, knownHostsLine, renderSshConfig } from "../../src/render/ssh-config.js";
import { sshLogin, sshRoute } from "../../src/resolve/ssh-route.js";
import { type HostKey, type LabSshKey, labSshKey, vmHostKey } from "../../src/ssh/keys.js";
import { compile } from "../helpers/topology.js";
import {
  guestRun,
  IMAGE,
  killVm,
  type LaunchedVm,
  launchImageVm,
  runtimeFiles,
  sshIn,
  sshUntil,
  testImage,
  waitAgent,
  writeText,
} from "./helpers/image-vm.js";
import { addNetns, delNetns, sh } from "./helpers/netns.js";

const NS = `qnt-img-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), "qnet-image-boot-"));
chmodSync(dir, 0o700);

// Seed section 3 (a private bridge 10.0.2.1 with VMs .2 and .3, addresses set in the guests: here by
// cloud-init, with no DHCP), section 1 for vm0 (user networking with tcp 2222 -> 22 on loopback), and a
// DHCP network served by dnsmasq with qnet's own configuration, where the VMs resolve each other by name.
const { lab } = compile(`name: imglab
networks:
  lan: { type: bridge, bridge: br0, subnet: 10.0.2.0/24, gateway: 10.0.2.1, dhcp: false }
  wan: { type: user, subnet: 10.0.3.0/24, forwards: ["tcp:2222:22"] }
  dlan: { type: bridge, bridge: br1, subnet: 10.0.4.0/24 }
vms:
  vm0:
    image: ${IMAGE}
    memory: 768
    nics:
      - { network: lan, ip: 10.0.2.2, mac: "52:54:00:12:34:56" }
      - { network: wan }
      - { network: dlan }
  vm1:
    image: ${IMAGE}
    memory: 768
    nics: [{ network: lan, ip: 10.0.2.3, mac: "52:54:00:12:34:57" }, { network: dlan }]
`);

let image: ResolvedImage;
let labKey: LabSshKey;
const hostKeys = new Map<string, HostKey>();
const vms = new Map<string, LaunchedVm>();
const ready = new Map<string, { agentMs: number; loginMs: number }>();
const knownHosts = join(dir, "known_hosts");

/**
 * The host side, by hand, in the test namespace (the seed's section 3: a bridge with the gateway address
 * and a tap per VM NIC), and dnsmasq on the DHCP network, from qnet's own configuration renderer.
 */
function hostSide(l: Lab): void {
  addNetns(NS);
  const batch: string[] = [];
  const bridges = new Map<string, string>();
  for (const net of l.networks) {
    if (net.type !== "bridge") continue;
    bridges.set(net.name, net.bridge);
    batch.push(
      `link add ${net.bridge} type bridge`,
      `addr add ${net.gateway}/${net.prefix} dev ${net.bridge}`,
      `link set ${net.bridge} up`,
    );
  }
  for (const vm of l.vms)
    for (const nic of vm.nics)
      if (nic.tap)
        batch.push(
          `tuntap add dev ${nic.tap} mode tap`,
          `link set ${nic.tap} master ${bridges.get(nic.network)}`,
          `link set ${nic.tap} up`,
        );
  sh(["ip", "-n", NS, "-batch", "-"], `${batch.join("\n")}\n`);
  const dlan = l.networks.find((n) => n.name === "dlan");
  assert.ok(dlan?.type === "bridge");
  const conf = dnsmasqPaths(dir, "dlan").conf;
  writeText(conf, renderDnsmasqConf(l, dlan, dir));
  sh(["ip", "netns", "exec", NS, "dnsmasq", `--conf-file=${conf}`]);
}

before(async () => {
  image = await testImage();
  hostSide(lab);
  labKey = await labSshKey(dir, lab.name);
  for (const vm of lab.vms) hostKeys.set(vm.name, await vmHostKey(dir, vm.name));
  writeText(
    knownHosts,
    `${lab.vms.map((vm) => knownHostsLine(hostKeyAlias(lab.name, vm.name), hostKeys.get(vm.name)!.publicKey)).join("\n")}\n`,
  );
  for (const vm of lab.vms) {
    const f = runtimeFiles(dir, vm.name);
    assert.equal(
      await createOverlay({ base: image.disk, baseFormat: image.format, path: f.overlay }),
      true,
    );
    const hk = hostKeys.get(vm.name)!;
    await writeCloudInitSeed(lab, vm, f.seed, dir, {
      authorizedKeys: [labKey.publicKey],
      hostKey: { privateKey: hk.privateKey, publicKey: hk.publicKey },
    });
  }
  // Both VMs boot at once, as qnet starts them.
  for (const vm of lab.vms) vms.set(vm.name, launchImageVm(NS, lab, vm, image, dir));
  await Promise.all(
    [...vms.values()].map(async (v) => {
      const agentMs = await waitAgent(v);
      const t0 = Date.now();
      // cloud-init's network stage writes the login, its key and the host key; sshd starts after it.
      const login = await waitGuestLogin(v.qga, { timeoutMs: 300_000 });
      assert.deepEqual(login.errors, [], `cloud-init on ${v.name}`);
      ready.set(v.name, { agentMs, loginMs: agentMs + (Date.now() - t0) });
    }),
  );
});

after(async () => {
  for (const v of vms.values()) killVm(v);
  const dnsmasqPid = join(dir, "dnsmasq-dlan.pid");
  if (existsSync(dnsmasqPid)) {
    try {
      process.kill(Number(readFileSync(dnsmasqPid, "utf8").trim()), "SIGTERM");
    } catch {}
  }
  delNetns(NS);
  rmSync(dir, { recursive: true, force: true });
});

describe(`image ${IMAGE} with real cloud-init (two VMs, TCG, 768 MiB, booted in parallel)`, () => {
  it("boots both VMs to a guest agent and a login ready for SSH (cloud-init network stage done)", (t) => {
    for (const [name, r] of ready) {
      t.diagnostic(`${name}: guest agent after ${r.agentMs} ms, login ready after ${r.loginMs} ms`);
    }
    assert.equal(ready.size, 2);
  });

  it("runs each VM on its own qcow2 overlay backed by the cached base", async () => {
    for (const vm of lab.vms) {
      const info = await diskInfo(runtimeFiles(dir, vm.name).overlay);
      assert.equal(info.format, "qcow2");
      assert.equal(info.backingFile, image.disk);
    }
  });

  it("seed section 1: OpenSSH logs in through the user-network forward with the lab key, host key pinned", async () => {
    // Plain OpenSSH, no qnet code on this path: known_hosts pins [127.0.0.1]:2222 to vm0's key.
    const kh = join(dir, "known_hosts.section1");
    writeText(kh, `${knownHostsLine("[127.0.0.1]:2222", hostKeys.get("vm0")!.publicKey)}\n`);
    const r = await sshUntil(NS, [
      "-F",
      "/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${kh}`,
      "-i",
      labKey.identityFile!,
      "-p",
      "2222",
      "qnet@127.0.0.1",
      "hostname",
    ]);
    assert.equal(r.stdout.trim(), "vm0");
  });

  it("refuses a host whose key is not the pinned one (StrictHostKeyChecking yes)", () => {
    const kh = join(dir, "known_hosts.wrong");
    // vm1's key pinned for vm0's forward: the client must refuse to talk to vm0.
    writeText(kh, `${knownHostsLine("[127.0.0.1]:2222", hostKeys.get("vm1")!.publicKey)}\n`);
    const r = sshIn(NS, [
      "-F",
      "/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${kh}`,
      "-i",
      labKey.identityFile!,
      "-p",
      "2222",
      "qnet@127.0.0.1",
      "hostname",
    ]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  it("refuses a key that is not the lab's, and offers no password login", async () => {
    const stranger = await labSshKey(join(dir, "stranger"), "stranger");
    const r = sshIn(NS, [
      "-F",
      "/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-i",
      stranger.identityFile!,
      "-p",
      "2222",
      "qnet@127.0.0.1",
      "hostname",
    ]);
    assert.notEqual(r.status, 0);
    // The server lists the methods it accepts: public keys only.
    assert.match(r.stderr, /Permission denied \(publickey\)/);
  });

  it("ssh -F <ssh-config> vm1 hostname prints vm1 (route: vm1's static address on the bridge)", async () => {
    const routes = lab.vms.map((vm) => {
      const r = sshRoute(lab, vm);
      assert.ok(r.ok, JSON.stringify(r));
      return {
        vm: vm.name,
        hostName: r.hostName,
        port: r.port,
        user: sshLogin(vm)!,
        identityFile: labKey.identityFile,
        knownHostsFile: knownHosts,
        hostKeyAlias: hostKeyAlias(lab.name, vm.name),
        via: r.via,
      };
    });
    const cfg = join(dir, "ssh_config");
    writeText(cfg, renderSshConfig(lab.name, routes));
    for (const vm of ["vm0", "vm1"]) {
      const r = await sshUntil(NS, ["-F", cfg, "-o", "BatchMode=yes", vm, "hostname"]);
      assert.equal(r.stdout.trim(), vm);
    }
    const sudo = sshIn(NS, ["-F", cfg, "-o", "BatchMode=yes", "vm1", "sudo", "-n", "id", "-u"]);
    assert.equal(sudo.stdout.trim(), "0", `passwordless sudo: ${sudo.stderr}`);
  });

  it("seed section 3: static addresses from cloud-init, the VMs ping each other and the gateway", async () => {
    const v0 = vms.get("vm0")!;
    const v1 = vms.get("vm1")!;
    const addr = await guestRun(v0, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert.match(addr.out, /inet 10\.0\.2\.2\/24/);
    const route = await guestRun(v0, ["ip", "route", "show", "default"]);
    assert.match(route.out, /^default via 10\.0\.2\.1 dev eth0/m);
    for (const [v, target] of [
      [v0, "10.0.2.3"],
      [v1, "10.0.2.2"],
      [v0, "10.0.2.1"],
      [v1, "10.0.2.1"],
    ] as const) {
      const ping = await guestRun(v, ["ping", "-c", "1", "-W", "5", target]);
      assert.equal(ping.code, 0, `${v.name} -> ${target}: ${ping.out}${ping.err}`);
    }
    // And the host side of the bridge reaches them.
    sh(["ip", "netns", "exec", NS, "ping", "-c", "1", "-W", "5", "10.0.2.3"]);
  });

  it("a DHCP network: addresses from dnsmasq, and the VMs resolve each other by name", async () => {
    const v0 = vms.get("vm0")!;
    const vm1 = lab.vms.find((v) => v.name === "vm1")!;
    const vm1Dlan = vm1.nics.find((n) => n.network === "dlan")!.ip!;
    const addr = await guestRun(v0, ["ip", "-4", "-o", "addr", "show", "dev", "eth2"]);
    assert.match(
      addr.out,
      new RegExp(`inet ${lab.vms[0]!.nics[2]!.ip!.replaceAll(".", "\\.")}/24`),
    );
    // The default route stays the static network's: later DHCP NICs install none.
    const route = await guestRun(v0, ["ip", "route", "show", "default"]);
    assert.equal(route.out.trim().split("\n").length, 1, route.out);
    // A plain name (the lab domain is a search domain, from DHCP) and the full name, through dnsmasq.
    for (const name of ["vm1", "vm1.imglab"]) {
      const r = await guestRun(v0, ["getent", "ahostsv4", name]);
      assert.equal(r.code, 0, `${name}: ${r.err}`);
      assert.equal(r.out.split(/\s+/)[0], vm1Dlan, `${name} -> ${r.out}`);
    }
    const ping = await guestRun(v0, ["ping", "-c", "1", "-W", "5", "vm1"]);
    assert.equal(ping.code, 0, ping.out + ping.err);
    // The user network's DHCP gave eth1 QEMU's DNS server.
    const dns = await guestRun(v0, ["resolvectl", "dns", "eth1"]);
    assert.match(dns.out, /10\.0\.3\.3/);
  });

  it("cloud-init reports no error, and the only SSH host key is the pinned one", async () => {
    const v = vms.get("vm1")!;
    const st = await waitCloudInit(v.qga, { timeoutMs: 300_000 });
    assert.equal(st.status, "done", st.detail);
    assert.match(st.detail, /status: done/);
    const keys = await guestRun(v, ["sh", "-c", "ls /etc/ssh/ssh_host_*"]);
    assert.deepEqual(keys.out.trim().split("\n").sort(), [
      "/etc/ssh/ssh_host_ed25519_key",
      "/etc/ssh/ssh_host_ed25519_key.pub",
    ]);
    const pub = await guestRun(v, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
    assert.equal(
      pub.out.trim().split(" ").slice(0, 2).join(" "),
      hostKeys.get("vm1")!.publicKey.split(" ").slice(0, 2).join(" "),
    );
  });

  it("leaves the base image unchanged after the guests wrote to their disks", async () => {
    const w = await guestRun(vms.get("vm0")!, ["sh", "-c", "echo written > /var/tmp/x && sync"]);
    assert.equal(w.code, 0);
    for (const v of vms.values()) killVm(v);
    vms.clear();
    assert.equal(await sha256File(image.disk), image.sha256);
  });
});
