// The QMP client against a real QEMU with no guest (-machine none): status, version, errors, quit.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { QmpClient, QmpError, qmpQueryStatus, qmpQuit } from "../../src/host/qmp.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), `qnt-qmp-${process.pid}-`));
const started: ChildProcess[] = [];

after(() => {
  for (const p of started) {
    if (p.pid !== undefined && p.exitCode === null && p.signalCode === null) {
      process.kill(p.pid, "SIGKILL");
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

let n = 0;
/** Start QEMU with only a QMP socket; returns at once (the socket appears a little later). */
function startQemu(extra: string[] = []): {
  proc: ChildProcess;
  socketPath: string;
  exited: Promise<number | null>;
} {
  const socketPath = path.join(dir, `qmp-${n++}.sock`);
  const proc = spawn(
    "qemu-system-x86_64",
    [
      "-machine",
      "none",
      "-nodefaults",
      "-display",
      "none",
      "-qmp",
      `unix:${socketPath},server=on,wait=off`,
      ...extra,
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  started.push(proc);
  const exited = new Promise<number | null>((resolve) =>
    proc.once("exit", (code) => resolve(code)),
  );
  return { proc, socketPath, exited };
}

test("query-status and query-version on a freshly started QEMU (connect waits for the socket)", async () => {
  const q = startQemu();
  const c = await QmpClient.connect(q.socketPath, { timeoutMs: 10_000 });
  try {
    const status = await c.execute<{ running: boolean; status: string }>("query-status");
    assert.equal(status.status, "running");
    assert.equal(status.running, true);
    const version = await c.execute<{ qemu: { major: number; minor: number } }>("query-version");
    assert.ok(version.qemu.major >= 7, JSON.stringify(version));
    assert.ok(Array.isArray((c.greeting as { capabilities?: unknown }).capabilities));
  } finally {
    c.close();
  }
  // A second connection after the first closed: QEMU's monitor accepts it.
  assert.deepEqual(await qmpQueryStatus(q.socketPath), { running: true, status: "running" });
  await qmpQuit(q.socketPath, 10_000);
  assert.equal(await q.exited, 0);
});

test("stop/cont are reflected in query-status, events are collected, errors carry their class", async () => {
  const q = startQemu(["-S"]);
  const c = await QmpClient.connect(q.socketPath, { timeoutMs: 10_000 });
  try {
    assert.deepEqual(await c.execute("query-status"), {
      status: "prelaunch",
      running: false,
      singlestep: false,
    });
    await c.execute("cont");
    assert.equal((await c.execute<{ status: string }>("query-status")).status, "running");
    await c.execute("stop");
    assert.equal((await c.execute<{ status: string }>("query-status")).status, "paused");
    assert.ok(
      c.events.some((e) => e.event === "STOP"),
      JSON.stringify(c.events),
    );
    await assert.rejects(c.execute("no-such-command"), (err: Error) => {
      assert.ok(err instanceof QmpError);
      assert.equal(err.errorClass, "CommandNotFound");
      assert.match(err.desc, /no-such-command/);
      return true;
    });
    await assert.rejects(
      c.execute("query-status", { bogus: 1 }),
      (err: Error) => err instanceof QmpError && err.errorClass === "GenericError",
    );
  } finally {
    c.close();
  }
  assert.deepEqual(await qmpQueryStatus(q.socketPath), { running: false, status: "paused" });
  await qmpQuit(q.socketPath, 10_000);
  assert.equal(await q.exited, 0);
});

test("qmpQuit makes the QEMU process exit, and the socket then refuses", async () => {
  const q = startQemu();
  await qmpQuit(q.socketPath, 10_000);
  const code = await Promise.race([
    q.exited,
    new Promise<string>((r) => setTimeout(() => r("still running"), 5000)),
  ]);
  assert.equal(code, 0);
  await assert.rejects(qmpQueryStatus(q.socketPath, 300));
});
