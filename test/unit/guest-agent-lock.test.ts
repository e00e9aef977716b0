// One guest-agent client per socket: the lock file excludes others, and dead holders do not block.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, test } from "node:test";
import { UserError } from "../../src/errors.js";
import { GuestAgent } from "../../src/host/guest-agent.js";
import { acquireLock } from "../../src/host/socket-lock.js";
import { type FakeAgent, reply, startFakeAgent, syncReply } from "./guest-agent-fake.js";

let fake: FakeAgent | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await fake?.close();
  fake = undefined;
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "qnet-lock-unit-"));
  dirs.push(d);
  return d;
}

/** The PID of a process that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  return Number(r.stdout.toString());
}

function answeringAgent(): Promise<FakeAgent> {
  return startFakeAgent((req, conn) => {
    if (req.execute === "guest-sync-delimited") conn.send(syncReply(req));
    if (req.execute === "guest-ping") conn.send(reply({}));
  });
}

test("a second client waits for the first to close, and times out while it holds on", async () => {
  fake = await answeringAgent();
  const first = await GuestAgent.connect(fake.socketPath, { timeoutMs: 2000 });
  const lockPath = `${fake.socketPath}.lock`;
  assert.match(fs.readFileSync(lockPath, "utf8"), new RegExp(`^${process.pid} `));
  await assert.rejects(
    GuestAgent.connect(fake.socketPath, { timeoutMs: 300 }),
    (err: Error) =>
      err instanceof UserError &&
      err.message.includes(`in use by process ${process.pid}`) &&
      err.message.includes(lockPath),
  );
  assert.equal(fake.connections.length, 1, "the waiting client never connected");
  const second = GuestAgent.connect(fake.socketPath, { timeoutMs: 3000 });
  setTimeout(() => first.close(), 200);
  const agent = await second;
  await agent.ping();
  agent.close();
  assert.equal(fs.existsSync(lockPath), false, "close removes the lock file");
});

test("a lock left by a dead process is broken", async () => {
  fake = await answeringAgent();
  const lockPath = `${fake.socketPath}.lock`;
  fs.writeFileSync(lockPath, `${deadPid()} 12345 deadbeef\n`);
  const agent = await GuestAgent.connect(fake.socketPath, { timeoutMs: 1000 });
  await agent.ping();
  assert.match(fs.readFileSync(lockPath, "utf8"), new RegExp(`^${process.pid} `));
  agent.close();
});

test("a lock whose PID was reused by another process (start time differs) is broken", async () => {
  const lockPath = path.join(tempDir(), "s.lock");
  // PID 1 is alive, but its start time is not 1.
  fs.writeFileSync(lockPath, "1 1 cafe\n");
  const h = await acquireLock(lockPath, { timeoutMs: 500 });
  h.release();
  assert.equal(fs.existsSync(lockPath), false);
});

test("a lock held by a live process is respected", async () => {
  const lockPath = path.join(tempDir(), "s.lock");
  const stat = fs.readFileSync("/proc/1/stat", "utf8");
  const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  fs.writeFileSync(lockPath, `1 ${start} cafe\n`);
  await assert.rejects(acquireLock(lockPath, { timeoutMs: 200 }), /in use by process 1 /);
  assert.equal(fs.readFileSync(lockPath, "utf8"), `1 ${start} cafe\n`, "left untouched");
});

test("releasing twice, or after someone else took over, does not remove their lock", async () => {
  const lockPath = path.join(tempDir(), "s.lock");
  const h = await acquireLock(lockPath, { timeoutMs: 200 });
  h.release();
  const h2 = await acquireLock(lockPath, { timeoutMs: 200 });
  h.release(); // stale handle
  assert.equal(fs.existsSync(lockPath), true);
  h2.release();
  assert.equal(fs.existsSync(lockPath), false);
  assert.deepEqual(fs.readdirSync(path.dirname(lockPath)), [], "no temp files are left behind");
});
