// The guest-agent client against the built-in guest booted in QEMU: wait, exec, interfaces, stale clients.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { UserError } from "../../src/errors.js";
import { buildGuest } from "../../src/guest/build.js";
import { guestCmdline } from "../../src/guest/init-script.js";
import { GuestAgent, waitForAgent } from "../../src/host/guest-agent.js";
import { QmpClient, qmpQuit } from "../../src/host/qmp.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), `qnt-qga-${process.pid}-`));
const qgaSock = path.join(dir, "qga.sock");
const qmpSock = path.join(dir, "qmp.sock");
const serialLog = path.join(dir, "serial.log");
const MAC = "52:54:00:71:67:61";
let qemu: ChildProcess | undefined;
let qemuExit: string | undefined;

before(async () => {
  const guest = await buildGuest({
    nicModels: ["virtio-net-pci"],
    cacheDir: path.join(dir, "cache"),
  });
  // TCG by default: on this host a KVM guest hangs right after the kernel's real-mode setup
  // (empty serial log; with -cpu host QEMU 7.2 even aborts on MSR 0x10a). QNET_E2E_ACCEL=kvm
  // tries KVM (with -cpu host,-arch-capabilities) where it works.
  const kvm = process.env.QNET_E2E_ACCEL === "kvm";
  const argv = [
    ...[
      "-machine",
      `q35,accel=${kvm ? "kvm" : "tcg"}`,
      "-cpu",
      kvm ? "host,-arch-capabilities" : "max",
    ],
    ...["-m", "256", "-nodefaults", "-display", "none", "-no-reboot"],
    ...["-kernel", guest.kernel, "-initrd", guest.initrd],
    "-append",
    guestCmdline({
      hostname: "qga-e2e",
      nics: [{ mac: MAC, ip: "10.99.7.2", prefix: 24, gateway: null, dhcp: false }],
    }),
    ...["-serial", `file:${serialLog}`],
    // The NIC sits on a hub with no other port: no traffic leaves QEMU.
    ...["-netdev", "hubport,id=n0,hubid=0"],
    ...["-device", `virtio-net-pci,netdev=n0,mac=${MAC},romfile=`],
    ...["-device", "virtio-serial"],
    ...["-chardev", `socket,id=qga0,path=${qgaSock},server=on,wait=off`],
    ...["-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"],
    ...["-qmp", `unix:${qmpSock},server=on,wait=off`],
    "-S", // start paused: the agent socket is there, but nothing answers yet
  ];
  qemu = spawn("qemu-system-x86_64", argv, { stdio: ["ignore", "ignore", "inherit"] });
  qemu.once("exit", (code, sig) => {
    qemuExit = `QEMU exited (${code ?? sig})`;
  });
});

/** Fails the test at once with a clear reason when QEMU died. */
function assertQemuRunning(): void {
  assert.equal(qemuExit, undefined, qemuExit);
}

after(async () => {
  if (qemu?.pid !== undefined && qemu.exitCode === null && qemu.signalCode === null) {
    try {
      await qmpQuit(qmpSock, 5000);
    } catch {
      // fall through to the kill below
    }
    if (qemu.exitCode === null && qemu.signalCode === null) process.kill(qemu.pid, "SIGKILL");
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

function serial(): string {
  try {
    return fs.readFileSync(serialLog, "utf8").slice(-3000);
  } catch {
    return "(no serial log)";
  }
}

test("while the guest is paused, QEMU accepts the socket but sync times out", async () => {
  await QmpClient.connect(qmpSock, { timeoutMs: 10_000 }).then((c) => c.close()); // QEMU is up
  assertQemuRunning();
  const started = Date.now();
  await assert.rejects(
    GuestAgent.connect(qgaSock, { timeoutMs: 2500, syncTimeoutMs: 800 }),
    (err: Error) => err instanceof UserError && /did not answer guest-sync/.test(err.message),
  );
  assert.ok(Date.now() - started >= 2400);
  await assert.rejects(
    waitForAgent(qgaSock, { timeoutMs: 1500, intervalMs: 100, syncTimeoutMs: 500 }),
    (err: Error) =>
      err instanceof UserError &&
      err.message.includes(qgaSock) &&
      /waiting \d+ ms/.test(err.message),
  );
});

test("after the guest starts, waitForAgent succeeds and exec runs busybox", async () => {
  assertQemuRunning();
  const qmp = await QmpClient.connect(qmpSock, { timeoutMs: 5000 });
  try {
    await qmp.execute("cont");
  } finally {
    qmp.close();
  }
  try {
    await waitForAgent(qgaSock, { timeoutMs: 180_000, intervalMs: 200 });
  } catch (err) {
    throw new Error(`agent never answered; serial log:\n${serial()}`, { cause: err });
  }
  const agent = await GuestAgent.connect(qgaSock, { timeoutMs: 10_000 });
  try {
    const hi = await agent.exec(["/bin/busybox", "echo", "hi"]);
    assert.deepEqual(
      { exitCode: hi.exitCode, stdout: hi.stdout.toString(), stderr: hi.stderr.toString() },
      { exitCode: 0, stdout: "hi\n", stderr: "" },
    );
    const cat = await agent.exec(["/bin/busybox", "cat"], { input: "through stdin\n" });
    assert.equal(cat.stdout.toString(), "through stdin\n");
    const fail = await agent.exec(["/bin/busybox", "sh", "-c", "echo oops >&2; echo $QX; exit 7"], {
      env: ["QX=from-env", "PATH=/bin"],
    });
    assert.equal(fail.exitCode, 7);
    assert.equal(fail.stderr.toString(), "oops\n");
    assert.equal(fail.stdout.toString(), "from-env\n");
    const killed = await agent.exec(["/bin/busybox", "sh", "-c", "kill -9 $$"]);
    assert.equal(killed.signal, 9);
    const big = await agent.exec([
      "/bin/busybox",
      "sh",
      "-c",
      "head -c 300000 /dev/zero | tr '\\0' x",
    ]);
    assert.equal(big.stdout.length, 300000);
  } finally {
    agent.close();
  }
});

test("networkInterfaces reports the NIC's MAC and its static address", async () => {
  const agent = await GuestAgent.connect(qgaSock, { timeoutMs: 10_000 });
  try {
    const ifaces = await agent.networkInterfaces();
    const nic = ifaces.find((i) => i.mac === MAC);
    assert.ok(nic, JSON.stringify(ifaces));
    assert.ok(
      nic.addresses.some((a) => a.ip === "10.99.7.2" && a.prefix === 24 && a.family === "ipv4"),
      JSON.stringify(nic),
    );
    assert.ok(ifaces.some((i) => i.name === "lo"));
  } finally {
    agent.close();
  }
});

test("a client that left a half-written request and an unread reply does not confuse the next", async () => {
  // A rude client: a full request whose reply it never reads, then half of another.
  await new Promise<void>((resolve, reject) => {
    const s = net.createConnection(qgaSock, () => {
      s.write('{"execute":"guest-info"}\n{"execute":"guest-exec","argu');
      setTimeout(() => {
        s.destroy();
        resolve();
      }, 300);
    });
    s.on("error", reject);
  });
  const agent = await GuestAgent.connect(qgaSock, { timeoutMs: 10_000 });
  try {
    await agent.ping();
    const r = await agent.exec(["/bin/busybox", "echo", "clean"]);
    assert.equal(r.stdout.toString(), "clean\n");
  } finally {
    agent.close();
  }
});
