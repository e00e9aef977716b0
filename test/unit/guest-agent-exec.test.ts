// guest-exec / guest-exec-status round trips, interface listing and error replies, on a fake agent.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { GuestAgent, GuestAgentError } from "../../src/host/guest-agent.js";
import {
  type FakeAgent,
  type FakeRequest,
  reply,
  startFakeAgent,
  syncReply,
} from "./guest-agent-fake.js";

let fake: FakeAgent | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");

test("exec sends path, args, env and base64 input, polls until exited, decodes output", async () => {
  let polls = 0;
  let execReq: FakeRequest | undefined;
  fake = await startFakeAgent((req, conn) => {
    switch (req.execute) {
      case "guest-sync-delimited":
        return conn.send(syncReply(req));
      case "guest-exec":
        execReq = req;
        return conn.send(reply({ pid: 321 }));
      case "guest-exec-status":
        assert.deepEqual(req.arguments, { pid: 321 });
        polls++;
        if (polls < 3) return conn.send(reply({ exited: false }));
        return conn.send(
          reply({
            exited: true,
            exitcode: 3,
            "out-data": b64("hello ünïcode\n"),
            "err-data": b64(Buffer.from([0, 1, 2, 255])),
          }),
        );
    }
  });
  const agent = await GuestAgent.connect(fake.socketPath, { timeoutMs: 2000 });
  try {
    const r = await agent.exec(["/bin/busybox", "sh", "-c", "cat; exit 3"], {
      input: "stdin data",
      env: ["A=1"],
    });
    assert.equal(r.exitCode, 3);
    assert.equal(r.signal, undefined);
    assert.equal(r.stdout.toString("utf8"), "hello ünïcode\n");
    assert.deepEqual([...r.stderr], [0, 1, 2, 255]);
    assert.equal(polls, 3);
    assert.deepEqual(execReq?.arguments, {
      path: "/bin/busybox",
      arg: ["sh", "-c", "cat; exit 3"],
      "capture-output": true,
      env: ["A=1"],
      "input-data": b64("stdin data"),
    });
  } finally {
    agent.close();
  }
});

test("exec reports a signal and empty output", async () => {
  fake = await startFakeAgent((req, conn) => {
    if (req.execute === "guest-sync-delimited") conn.send(syncReply(req));
    if (req.execute === "guest-exec") conn.send(reply({ pid: 7 }));
    if (req.execute === "guest-exec-status") conn.send(reply({ exited: true, signal: 9 }));
  });
  const agent = await GuestAgent.connect(fake.socketPath, { timeoutMs: 2000 });
  try {
    const r = await agent.exec(["/bin/sleep", "100"]);
    assert.equal(r.signal, 9);
    assert.equal(r.exitCode, 137);
    assert.equal(r.stdout.length, 0);
    assert.equal(r.stderr.length, 0);
  } finally {
    agent.close();
  }
});

test("exec gives up after its timeout while the program still runs", async () => {
  fake = await startFakeAgent((req, conn) => {
    if (req.execute === "guest-sync-delimited") conn.send(syncReply(req));
    if (req.execute === "guest-exec") conn.send(reply({ pid: 8 }));
    if (req.execute === "guest-exec-status") conn.send(reply({ exited: false }));
  });
  const agent = await GuestAgent.connect(fake.socketPath, { timeoutMs: 2000 });
  try {
    await assert.rejects(agent.exec(["/bin/sleep", "100"], { timeoutMs: 300 }), /still running/);
  } finally {
    agent.close();
  }
});

test("an error reply becomes a GuestAgentError with class and description", async () => {
  fake = await startFakeAgent((req, conn) => {
    if (req.execute === "guest-sync-delimited") conn.send(syncReply(req));
    if (req.execute === "guest-exec") {
      conn.send(
        `${JSON.stringify({ error: { class: "GenericError", desc: "Guest agent command failed" } })}\n`,
      );
    }
    if (req.execute === "guest-ping") conn.send(reply({}));
  });
  const agent = await GuestAgent.connect(fake.socketPath, { timeoutMs: 2000 });
  try {
    await assert.rejects(agent.exec(["/nope"]), (err: Error) => {
      assert.ok(err instanceof GuestAgentError);
      assert.equal(err.errorClass, "GenericError");
      assert.equal(err.desc, "Guest agent command failed");
      assert.equal(err.command, "guest-exec");
      return true;
    });
    await agent.ping(); // the stream is still usable
  } finally {
    agent.close();
  }
});

test("networkInterfaces maps names, MACs and addresses", async () => {
  fake = await startFakeAgent((req, conn) => {
    if (req.execute === "guest-sync-delimited") conn.send(syncReply(req));
    if (req.execute === "guest-network-get-interfaces") {
      conn.send(
        reply([
          {
            name: "lo",
            "hardware-address": "00:00:00:00:00:00",
            "ip-addresses": [{ "ip-address-type": "ipv4", "ip-address": "127.0.0.1", prefix: 8 }],
          },
          {
            name: "eth0",
            "hardware-address": "52:54:00:AB:CD:EF",
            "ip-addresses": [
              { "ip-address-type": "ipv4", "ip-address": "10.0.0.5", prefix: 24 },
              { "ip-address-type": "ipv6", "ip-address": "fe80::1", prefix: 64 },
            ],
            statistics: { "rx-bytes": 1 },
          },
          { name: "dummy0" },
        ]),
      );
    }
  });
  const agent = await GuestAgent.connect(fake.socketPath, { timeoutMs: 2000 });
  try {
    assert.deepEqual(await agent.networkInterfaces(), [
      {
        name: "lo",
        mac: "00:00:00:00:00:00",
        addresses: [{ ip: "127.0.0.1", prefix: 8, family: "ipv4" }],
      },
      {
        name: "eth0",
        mac: "52:54:00:ab:cd:ef",
        addresses: [
          { ip: "10.0.0.5", prefix: 24, family: "ipv4" },
          { ip: "fe80::1", prefix: 64, family: "ipv6" },
        ],
      },
      { name: "dummy0", mac: "", addresses: [] },
    ]);
  } finally {
    agent.close();
  }
});

test("replies split across many small writes are reassembled", async () => {
  fake = await startFakeAgent((req, conn) => {
    const whole =
      req.execute === "guest-sync-delimited"
        ? syncReply(req)
        : Buffer.from(reply({ text: 'a}b{c"d\\', n: [1, { x: 2 }] }));
    for (let i = 0; i < whole.length; i++) {
      setTimeout(() => conn.send(whole.subarray(i, i + 1)), i);
    }
  });
  const agent = await GuestAgent.connect(fake.socketPath, { timeoutMs: 3000 });
  try {
    assert.deepEqual(await agent.execute("guest-info"), { text: 'a}b{c"d\\', n: [1, { x: 2 }] });
  } finally {
    agent.close();
  }
});
