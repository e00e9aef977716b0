// The guest-agent client against the real qemu-ga binary, run on the host in unix-listen mode.
//
// This checks the wire protocol (0xFF sentinels, base64 exec output, error replies) against the
// real agent without needing a guest. Only harmless programs are run; every RPC that could
// change the machine (shutdown, freeze, time, passwords, files, keys, CPUs) is blocked.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { GuestAgent, GuestAgentError, waitForAgent } from "../../src/host/guest-agent.js";

const BLOCKED = [
  "guest-shutdown",
  "guest-suspend-disk",
  "guest-suspend-ram",
  "guest-suspend-hybrid",
  "guest-set-time",
  "guest-fsfreeze-freeze",
  "guest-fsfreeze-freeze-list",
  "guest-fsfreeze-thaw",
  "guest-fstrim",
  "guest-set-user-password",
  "guest-set-vcpus",
  "guest-set-memory-blocks",
  "guest-file-open",
  "guest-file-write",
  "guest-ssh-add-authorized-keys",
  "guest-ssh-remove-authorized-keys",
];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), `qnt-qgahost-${process.pid}-`));
const sock = path.join(dir, "qga.sock");
let agentProc: ChildProcess | undefined;

function qemuGaPath(): string {
  for (const p of ["/usr/sbin/qemu-ga", "/usr/bin/qemu-ga"]) if (fs.existsSync(p)) return p;
  throw new Error("qemu-ga is not installed (qemu-guest-agent)");
}

before(() => {
  agentProc = spawn(
    qemuGaPath(),
    [
      ...["-m", "unix-listen", "-p", sock],
      ...["-t", dir, "-f", path.join(dir, "qga.pid"), "-l", path.join(dir, "qga.log")],
      ...["-b", BLOCKED.join(",")],
    ],
    { stdio: "ignore" },
  );
});

after(() => {
  if (
    agentProc?.pid !== undefined &&
    agentProc.exitCode === null &&
    agentProc.signalCode === null
  ) {
    process.kill(agentProc.pid, "SIGKILL");
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test("waitForAgent sees the agent come up", async () => {
  await waitForAgent(sock, { timeoutMs: 10_000, intervalMs: 50 });
});

test("exec captures stdout, stderr, exit code and stdin through the real agent", async () => {
  const agent = await GuestAgent.connect(sock, { timeoutMs: 5000 });
  try {
    const r = await agent.exec(["/bin/busybox", "echo", "hi"]);
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout.toString(), "hi\n");
    assert.equal(r.stderr.length, 0);
    const cat = await agent.exec(["/bin/busybox", "cat"], { input: Buffer.from([0, 1, 254, 10]) });
    assert.deepEqual([...cat.stdout], [0, 1, 254, 10]);
    const sh = await agent.exec(["/bin/busybox", "sh", "-c", 'echo "$QX" >&2; exit 5'], {
      env: ["QX=ünïcode"],
    });
    assert.equal(sh.exitCode, 5);
    assert.equal(sh.stderr.toString(), "ünïcode\n");
    const sig = await agent.exec(["/bin/busybox", "sh", "-c", "kill -TERM $$"]);
    assert.equal(sig.signal, 15);
    assert.equal(sig.exitCode, 143);
  } finally {
    agent.close();
  }
});

test("an agent error carries its class; a blocked RPC is refused", async () => {
  const agent = await GuestAgent.connect(sock, { timeoutMs: 5000 });
  try {
    await assert.rejects(agent.exec(["/nonexistent/program"]), GuestAgentError);
    await assert.rejects(agent.execute("guest-shutdown"), (err: Error) => {
      assert.ok(err instanceof GuestAgentError);
      assert.equal(err.errorClass, "CommandNotFound");
      return true;
    });
    await agent.ping();
  } finally {
    agent.close();
  }
});

test("networkInterfaces lists at least the loopback", async () => {
  const agent = await GuestAgent.connect(sock, { timeoutMs: 5000 });
  try {
    const ifaces = await agent.networkInterfaces();
    const lo = ifaces.find((i) => i.name === "lo");
    assert.ok(lo, JSON.stringify(ifaces));
    assert.ok(
      lo.addresses.some((a) => a.ip === "127.0.0.1" && a.prefix === 8 && a.family === "ipv4"),
    );
  } finally {
    agent.close();
  }
});

test("a rude earlier client (unread reply, half a request) does not confuse the next one", async () => {
  await new Promise<void>((resolve, reject) => {
    const s = net.createConnection(sock, () => {
      s.write('{"execute":"guest-info"}\n{"execute":"guest-exec","argu');
      setTimeout(() => {
        s.destroy();
        resolve();
      }, 200);
    });
    s.on("error", reject);
  });
  const agent = await GuestAgent.connect(sock, { timeoutMs: 5000 });
  try {
    const r = await agent.exec(["/bin/busybox", "echo", "clean"]);
    assert.equal(r.stdout.toString(), "clean\n");
  } finally {
    agent.close();
  }
});
