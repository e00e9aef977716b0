// Real Debian guests with real cloud-init, started by `qnet up` as a user would: the seed's sections 1 and
// 3 with the built image, a DHCP + NAT network where the VMs find each other by name, OpenSSH throughout.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { sha256File } from "../../src/image/build.js";
import { diskInfo } from "../../src/image/qemu-img.js";
import type { ResolvedImage } from "../../src/image/resolve.js";
import { leftovers, qnetWith } from "./helpers/host-state.js";
import { IMAGE, sshIn, sshUntil, testImage } from "./helpers/image-vm.js";
import { addNetns, delNetns, qemuPids, snapshot } from "./helpers/netns.js";

const NS = `qnt-img-${process.pid}`;
const root = mkdtempSync(join(tmpdir(), "qnet-image-boot-"));
chmodSync(root, 0o700);
const data = join(root, "data");
const state = join(root, "state");
const labDir = join(state, "imglab");
const keys = join(labDir, "ssh");
const topo = join(root, "imglab.yaml");
const persisted = join(data, "qnet", "overlays", "imglab", "vm1.qcow2");

// Seed section 3 (a private bridge 10.0.2.1 with VMs .2 and .3, addresses set in the guests: here by
// cloud-init, with no DHCP), section 1 for vm0 (user networking with tcp 2222 -> 22 on loopback), and a
// DHCP + NAT network served by qnet's dnsmasq. vm1 keeps its disk (persist).
writeFileSync(
  topo,
  `name: imglab
networks:
  lan: { type: bridge, subnet: 10.0.2.0/24, gateway: 10.0.2.1, dhcp: false }
  wan: { type: user, subnet: 10.0.3.0/24, forwards: ["tcp:2222:22"] }
  dlan: { type: bridge, subnet: 10.0.4.0/24, nat: true }
vms:
  vm0:
    image: ${IMAGE}
    memory: 768
    nics:
      - { network: lan, ip: 10.0.2.2 }
      - { network: wan }
      - { network: dlan }
  vm1:
    image: ${IMAGE}
    memory: 768
    persist: true
    nics: [{ network: lan, ip: 10.0.2.3 }, { network: dlan }]
`,
);

const qnet = (args: string[], timeoutMs = 180_000) =>
  qnetWith(state, args, { XDG_DATA_HOME: data }, timeoutMs);
const exec = (vm: string, argv: string[]) => {
  const r = qnet(["exec", "imglab", vm, "--", ...argv], 90_000);
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const blob = (pub: string) => pub.trim().split(/\s+/).slice(0, 2).join(" ");
const hostPub = (vm: string) => readFileSync(join(keys, `host-${vm}_ed25519.pub`), "utf8");

let image: ResolvedImage;
let empty: ReturnType<typeof snapshot>;
let up: { status: number | null; stdout: string; stderr: string; ms: number };

before(async () => {
  // Built once per run in the shared cache (the other image tests use the same one).
  image = await testImage();
  addNetns(NS);
  empty = snapshot(NS);
  const t0 = Date.now();
  const r = qnet(["up", topo, "--netns", NS, "--json"], 900_000);
  up = { ...r, ms: Date.now() - t0 };
});

after(() => {
  qnet(["down", "imglab"]);
  delNetns(NS);
  rmSync(root, { recursive: true, force: true });
});

describe(`qnet up with image ${IMAGE} and real cloud-init (two VMs, TCG, 768 MiB, in parallel)`, () => {
  it("up starts both VMs and returns when their agents answer", (t) => {
    assert.equal(up.status, 0, up.stderr);
    t.diagnostic(`up took ${up.ms} ms`);
    const res = JSON.parse(up.stdout);
    assert.deepEqual(
      res.vms.map((v: { name: string; ready: boolean }) => [v.name, v.ready]),
      [
        ["vm0", true],
        ["vm1", true],
      ],
    );
  });

  it("runs each VM on its own qcow2 overlay backed by the cached base; status lists them", async () => {
    const overlays = [join(labDir, "vm", "vm0.overlay.qcow2"), persisted];
    for (const path of overlays) {
      const info = await diskInfo(path);
      assert.equal(info.format, "qcow2");
      assert.equal(info.backingFile, image.disk);
    }
    const s = JSON.parse(qnet(["status", "imglab", "--json"]).stdout);
    const ov = s.objects.filter((o: { kind: string }) => o.kind === "overlay");
    assert.deepEqual(ov.map((o: { name: string; state: string }) => [o.name, o.state]).sort(), [
      ["vm0", "present"],
      ["vm1", "present"],
    ]);
  });

  it("seed section 1: OpenSSH logs in through the user-network forward with the lab key, host key pinned", async () => {
    // Plain OpenSSH, no qnet code on this path: known_hosts pins [127.0.0.1]:2222 to vm0's key.
    const kh = join(root, "known_hosts.section1");
    writeFileSync(kh, `[127.0.0.1]:2222 ${blob(hostPub("vm0"))}\n`);
    const base = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"];
    const r = await sshUntil(NS, [
      ...base,
      ...["-o", `UserKnownHostsFile=${kh}`, "-i", join(keys, "id_ed25519")],
      ...["-p", "2222", "qnet@127.0.0.1", "hostname"],
    ]);
    assert.equal(r.stdout.trim(), "vm0");
    // vm1's key pinned for vm0's forward: the client refuses to talk to vm0.
    const wrong = join(root, "known_hosts.wrong");
    writeFileSync(wrong, `[127.0.0.1]:2222 ${blob(hostPub("vm1"))}\n`);
    const refused = sshIn(NS, [
      ...base,
      ...["-o", `UserKnownHostsFile=${wrong}`, "-i", join(keys, "id_ed25519")],
      ...["-p", "2222", "qnet@127.0.0.1", "hostname"],
    ]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  it("refuses a key that is not the lab's, and offers no password login", () => {
    const stranger = join(root, "stranger");
    spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", stranger]);
    const r = sshIn(NS, [
      ...["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"],
      ...["-o", "UserKnownHostsFile=/dev/null", "-i", stranger],
      ...["-p", "2222", "qnet@127.0.0.1", "hostname"],
    ]);
    assert.notEqual(r.status, 0);
    // The server lists the methods it accepts: public keys only.
    assert.match(r.stderr, /Permission denied \(publickey\)/);
  });

  it("ssh -F <ssh-config> vm1 hostname prints vm1 (vm1's static address on the bridge); sudo needs no password", async () => {
    const cfg = qnet(["ssh-config", "imglab"]);
    assert.equal(cfg.status, 0, cfg.stderr);
    assert.match(cfg.stdout, /^Host vm1\n\s+HostName 10\.0\.2\.3$/m);
    const file = join(root, "ssh_config");
    writeFileSync(file, cfg.stdout);
    for (const vm of ["vm0", "vm1"]) {
      const r = await sshUntil(NS, ["-F", file, "-o", "BatchMode=yes", vm, "hostname"]);
      assert.equal(r.stdout.trim(), vm);
    }
    const sudo = sshIn(NS, ["-F", file, "-o", "BatchMode=yes", "vm1", "sudo", "-n", "id", "-u"]);
    assert.equal(sudo.stdout.trim(), "0", `passwordless sudo: ${sudo.stderr}`);
    const q = qnet(["ssh", "imglab", "vm1", "--", "id", "-un"]);
    assert.equal(q.status, 0, q.stderr);
    assert.equal(q.stdout.trim(), "qnet");
  });

  it("seed section 3: static addresses from cloud-init, the VMs ping each other and the gateway", () => {
    const addr = exec("vm0", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert.match(addr.out, /inet 10\.0\.2\.2\/24/);
    const route = exec("vm0", ["ip", "route", "show", "default"]);
    assert.match(route.out, /^default via 10\.0\.2\.1 dev eth0/m);
    for (const [vm, target] of [
      ["vm0", "10.0.2.3"],
      ["vm1", "10.0.2.2"],
      ["vm0", "10.0.2.1"],
      ["vm1", "10.0.2.1"],
    ] as const) {
      const ping = exec(vm, ["ping", "-c", "1", "-W", "5", target]);
      assert.equal(ping.code, 0, `${vm} -> ${target}: ${ping.out}${ping.err}`);
    }
  });

  it("the DHCP + NAT network: addresses from dnsmasq, and the VMs resolve each other by name", () => {
    const plan = JSON.parse(qnet(["plan", topo, "--json"]).stdout);
    const vm1 = plan.lab.vms.find((v: { name: string }) => v.name === "vm1");
    const vm1Dlan = vm1.nics.find((n: { network: string }) => n.network === "dlan").ip;
    assert.match(vm1Dlan, /^10\.0\.4\./);
    // The default route stays the static network's: later DHCP NICs install none.
    const route = exec("vm0", ["ip", "route", "show", "default"]);
    assert.deepEqual(route.out.trim().split("\n"), [route.out.trim()], route.out);
    assert.match(route.out, /^default via 10\.0\.2\.1 dev eth0/);
    // A plain name (the lab domain is a search domain, from DHCP) and the full name, through dnsmasq.
    for (const name of ["vm1", "vm1.imglab"]) {
      const r = exec("vm0", ["getent", "ahostsv4", name]);
      assert.equal(r.code, 0, `${name}: ${r.err}`);
      assert.equal(r.out.split(/\s+/)[0], vm1Dlan, `${name} -> ${r.out}`);
    }
    const ping = exec("vm0", ["ping", "-c", "1", "-W", "5", "vm1"]);
    assert.equal(ping.code, 0, ping.out + ping.err);
    // The user network's DHCP gave eth1 QEMU's DNS server.
    const dns = exec("vm0", ["resolvectl", "dns", "eth1"]);
    assert.match(dns.out, /10\.0\.3\.3/);
  });

  it("cloud-init reports no error, and the only SSH host key is the pinned one", () => {
    const st = exec("vm1", ["cloud-init", "status", "--wait"]);
    assert.equal(st.code, 0, st.out + st.err);
    assert.match(st.out, /status: done/);
    const ls = exec("vm1", ["sh", "-c", "ls /etc/ssh/ssh_host_*"]);
    assert.deepEqual(ls.out.trim().split("\n").sort(), [
      "/etc/ssh/ssh_host_ed25519_key",
      "/etc/ssh/ssh_host_ed25519_key.pub",
    ]);
    const pub = exec("vm1", ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
    assert.equal(blob(pub.out), blob(hostPub("vm1")));
  });

  it("down leaves no process, overlay or namespace change behind, keeps vm1's persistent disk, and the base is unchanged", async () => {
    const w = exec("vm0", ["sh", "-c", "echo written > /var/tmp/x && sync"]);
    assert.equal(w.code, 0);
    const d = qnet(["down", "imglab"]);
    assert.equal(d.status, 0, d.stderr);
    assert.deepEqual(qemuPids("imglab"), []);
    assert.equal(existsSync(join(labDir, "vm", "vm0.overlay.qcow2")), false);
    assert.deepEqual(leftovers(state, "imglab"), []);
    assert.deepEqual(snapshot(NS), empty);
    assert.equal(existsSync(persisted), true, "persist: true keeps vm1's overlay");
    assert.equal((await diskInfo(persisted)).backingFile, image.disk);
    assert.equal(await sha256File(image.disk), image.sha256);
  });
});
