// QMP client framing against a fake monitor: greeting, capabilities, events, ids, errors.

import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { UserError } from "../../src/errors.js";
import { QmpClient, QmpError, qmpQueryStatus, qmpQuit } from "../../src/host/qmp.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qnet-qmp-unit-"));
const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

type Cmd = { execute: string; arguments?: Record<string, unknown>; id?: unknown };
let n = 0;

/** A fake QMP monitor: greets, then answers each CRLF-free JSON line with `answer`. */
async function fakeMonitor(
  answer: (cmd: Cmd, send: (o: unknown) => void, sock: net.Socket) => void,
  opts: { listen?: boolean } = {},
): Promise<{ socketPath: string; commands: Cmd[]; start: () => Promise<void> }> {
  const socketPath = path.join(dir, `qmp-${n++}.sock`);
  const commands: Cmd[] = [];
  const server = net.createServer((sock) => {
    const send = (o: unknown) => sock.write(`${JSON.stringify(o)}\r\n`);
    send({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: ["oob"] } });
    let pending = "";
    sock.on("error", () => undefined);
    sock.on("data", (d) => {
      pending += d.toString();
      let nl = pending.indexOf("\n");
      while (nl >= 0) {
        const cmd = JSON.parse(pending.slice(0, nl)) as Cmd;
        pending = pending.slice(nl + 1);
        commands.push(cmd);
        if (cmd.execute === "qmp_capabilities") send({ return: {}, id: cmd.id });
        else answer(cmd, send, sock);
        nl = pending.indexOf("\n");
      }
    });
  });
  servers.push(server);
  const start = () => new Promise<void>((resolve) => server.listen(socketPath, resolve));
  if (opts.listen !== false) await start();
  return { socketPath, commands, start };
}

test("execute skips events and replies to other ids, collects events, returns `return`", async () => {
  const m = await fakeMonitor((cmd, send) => {
    send({ event: "RESUME", timestamp: { seconds: 1, microseconds: 2 } });
    send({ return: { stale: true }, id: "someone-else" });
    send({ return: { running: true, status: "running" }, id: cmd.id });
  });
  const c = await QmpClient.connect(m.socketPath, { timeoutMs: 1000 });
  try {
    assert.deepEqual(await c.execute("query-status"), { running: true, status: "running" });
    assert.deepEqual(
      c.events.map((e) => e.event),
      ["RESUME"],
    );
    assert.deepEqual((c.greeting.version as { qemu: { major: number } }).qemu.major, 7);
    assert.deepEqual(
      m.commands.map((x) => x.execute),
      ["qmp_capabilities", "query-status"],
    );
    assert.notEqual(m.commands[0]!.id, m.commands[1]!.id);
  } finally {
    c.close();
  }
});

test("an error reply throws QmpError with class and desc", async () => {
  const m = await fakeMonitor((cmd, send) =>
    send({
      error: { class: "CommandNotFound", desc: "The command nope has not been found" },
      id: cmd.id,
    }),
  );
  const c = await QmpClient.connect(m.socketPath, { timeoutMs: 1000 });
  try {
    await assert.rejects(c.execute("nope", { a: 1 }), (err: Error) => {
      assert.ok(err instanceof QmpError);
      assert.equal(err.errorClass, "CommandNotFound");
      assert.equal(err.desc, "The command nope has not been found");
      return true;
    });
    assert.deepEqual(m.commands[1]!.arguments, { a: 1 });
  } finally {
    c.close();
  }
});

test("connect retries until the socket appears", async () => {
  const m = await fakeMonitor(
    (cmd, send) => send({ return: { status: "paused", running: false }, id: cmd.id }),
    {
      listen: false,
    },
  );
  setTimeout(() => void m.start(), 300);
  assert.deepEqual(await qmpQueryStatus(m.socketPath, 3000), { running: false, status: "paused" });
});

test("connect gives up with a UserError when no socket appears", async () => {
  await assert.rejects(
    QmpClient.connect(path.join(dir, "absent.sock"), { timeoutMs: 200 }),
    (err: Error) => err instanceof UserError && /absent\.sock/.test(err.message),
  );
});

test("qmpQuit succeeds when the monitor closes right after quit, even without a reply", async () => {
  const m = await fakeMonitor((cmd, _send, sock) => {
    if (cmd.execute === "quit") sock.end();
  });
  await qmpQuit(m.socketPath, 2000);
  assert.equal(m.commands.at(-1)?.execute, "quit");
});

test("qmpQuit fails when the monitor acknowledges quit but stays open", async () => {
  const m = await fakeMonitor((cmd, send) => send({ return: {}, id: cmd.id }));
  await assert.rejects(qmpQuit(m.socketPath, 400), /did not exit within 400 ms/);
});
