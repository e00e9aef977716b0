// The built-in guest's SSH server: dropbear with keys from fw_cfg, reached by OpenSSH through the seed's 2222 -> 22 forward.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildGuest } from "../../src/guest/build.js";
import { guestCmdline, READY_PREFIX } from "../../src/guest/init-script.js";
import { builtinSshArgs } from "../../src/guest/ssh.js";
import { knownHostsLine } from "../../src/render/ssh-config.js";
import { builtinSshFiles } from "../../src/ssh/builtin.js";
import { type LabSshKey, labSshKey, vmHostKey } from "../../src/ssh/keys.js";
import { sshIn, sshUntil, writeText } from "./helpers/image-vm.js";
import { addNetns, delNetns } from "./helpers/netns.js";

const NS = `qnt-gssh-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), "qnet-guest-ssh-"));
chmodSync(dir, 0o700);
const MAC = "52:54:00:12:34:56";

let qemu: ChildProcess | undefined;
let labKey: LabSshKey;
let hostPub = "";
let readyMs = 0;
let sshMs = 0;
let cmdline = "";

before(async () => {
  addNetns(NS);
  labKey = await labSshKey(dir, "gssh");
  const files = await builtinSshFiles(dir, "vm0", [labKey.publicKey]);
  hostPub = files.publicKey;
  const guest = await buildGuest({ nicModels: ["virtio-net-pci"], cacheDir: join(dir, "cache") });
  const serial = join(dir, "serial.log");
  const argv = [
    "netns",
    "exec",
    NS,
    "qemu-system-x86_64",
    "-nodefaults",
    "-machine",
    "q35,accel=tcg",
    "-m",
    "256",
    "-kernel",
    guest.kernel,
    "-initrd",
    guest.initrd,
    "-append",
    guestCmdline({
      hostname: "vm0",
      nics: [{ mac: MAC, ip: "10.0.2.15", prefix: 24, gateway: "10.0.2.2", dhcp: false }],
    }),
    "-serial",
    `file:${serial}`,
    "-display",
    "none",
    "-no-reboot",
    // The seed's section 1, bound to the namespace's loopback.
    "-netdev",
    "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22",
    "-device",
    `virtio-net-pci,netdev=n0,mac=${MAC},romfile=`,
    ...builtinSshArgs(files),
  ];
  const t0 = Date.now();
  qemu = spawn("ip", argv, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  qemu.stderr?.on("data", (d) => {
    stderr += String(d);
  });
  for (;;) {
    const log = existsSync(serial) ? readFileSync(serial, "utf8") : "";
    if (log.includes(`${READY_PREFIX} vm0`)) break;
    if (qemu.exitCode !== null || Date.now() - t0 > 120_000)
      throw new Error(`guest not ready: ${stderr}\n${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  readyMs = Date.now() - t0;
  // `ip netns exec` execs QEMU in place: this PID is QEMU's, and so is its command line.
  cmdline = readFileSync(`/proc/${qemu.pid}/cmdline`, "utf8");
  const kh = join(dir, "known_hosts");
  writeText(kh, `${knownHostsLine("[127.0.0.1]:2222", hostPub)}\n`);
  const r = await sshUntil(NS, [...sshOpts(kh), "hostname"], 60_000);
  sshMs = Date.now() - t0;
  assert.equal(r.stdout.trim(), "vm0");
});

after(() => {
  if (qemu?.pid !== undefined && qemu.exitCode === null) {
    process.kill(qemu.pid, "SIGKILL");
  }
  delNetns(NS);
  rmSync(dir, { recursive: true, force: true });
});

const sshOpts = (knownHosts: string) => [
  "-F",
  "/dev/null",
  "-o",
  "BatchMode=yes",
  "-o",
  "StrictHostKeyChecking=yes",
  "-o",
  `UserKnownHostsFile=${knownHosts}`,
  "-i",
  labKey.identityFile!,
  "-p",
  "2222",
  "root@127.0.0.1",
];

describe("built-in guest with dropbear (TCG, user networking, hostfwd 127.0.0.1:2222 -> 22)", () => {
  it("OpenSSH logs in with the lab key against the pinned host key and runs hostname", (t) => {
    t.diagnostic(`ready line after ${readyMs} ms, first successful ssh after ${sshMs} ms`);
    const r = sshIn(NS, [...sshOpts(join(dir, "known_hosts")), "hostname"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "vm0\n");
  });

  it("refuses a server whose key is not the pinned one", async () => {
    const other = await vmHostKey(dir, "other");
    const kh = join(dir, "known_hosts.wrong");
    writeText(kh, `${knownHostsLine("[127.0.0.1]:2222", other.publicKey)}\n`);
    const r = sshIn(NS, [...sshOpts(kh), "hostname"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  it("refuses a key that is not authorized, and passwords", async () => {
    const stranger = await labSshKey(join(dir, "stranger"), "stranger");
    const opts = sshOpts(join(dir, "known_hosts"));
    opts[opts.indexOf(labKey.identityFile!)] = stranger.identityFile!;
    const r = sshIn(NS, [...opts, "hostname"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Permission denied \(publickey\)/);
  });

  it("keeps private key material off QEMU's command line (it goes through fw_cfg files)", () => {
    assert.ok(cmdline.startsWith("qemu-system-x86_64\0"), cmdline.slice(0, 80));
    assert.ok(cmdline.includes("name=opt/qnet/ssh_host_key"), "fw_cfg host key argument");
    const privateKey = readFileSync(join(dir, "ssh", "host-vm0_ed25519"), "utf8");
    const body = privateKey.split("\n")[1]!;
    assert.ok(body.length > 20);
    assert.ok(!cmdline.includes(body), "private key text on the command line");
    assert.ok(!cmdline.includes("PRIVATE KEY"));
  });
});
