// The guest-agent client only trusts the reply that follows a 0xFF sentinel and carries its own id.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { UserError } from "../../src/errors.js";
import { GuestAgent, waitForAgent } from "../../src/host/guest-agent.js";
import { type FakeAgent, reply, startFakeAgent, syncReply } from "./guest-agent-fake.js";

let fake: FakeAgent | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

test("stale replies and a stale sentinel from an earlier client are skipped", async () => {
  fake = await startFakeAgent((req, conn) => {
    if (req.execute === "guest-sync-delimited") {
      // Leftovers from a previous client: a reply, a half-sent object, and its own sync reply.
      conn.send(reply({ pid: 999 }));
      conn.send('{"return": {"half": "');
      conn.send(Buffer.concat([Buffer.from([0xff]), Buffer.from('{"return": 4242}\n')]));
      conn.send(syncReply(req));
    } else if (req.execute === "guest-ping") {
      conn.send(reply({}));
    }
  });
  const agent = await GuestAgent.connect(fake.socketPath, { timeoutMs: 2000 });
  try {
    await agent.ping();
    const conn = fake.connections[0]!;
    assert.equal(conn.resets, 1, "the client sends one 0xFF before its sync");
    assert.deepEqual(
      conn.requests.map((r) => r.execute),
      ["guest-sync-delimited", "guest-ping"],
    );
    const id = conn.requests[0]!.arguments?.id;
    assert.equal(typeof id, "number");
    assert.notEqual(id, 4242);
  } finally {
    agent.close();
  }
});

test("a reply with the right id but no sentinel before it is not taken as the sync", async () => {
  fake = await startFakeAgent((req, conn) => {
    if (req.execute !== "guest-sync-delimited") return;
    // First the id without a sentinel (must be ignored), then nothing: the sync must time out.
    conn.send(reply(req.arguments?.id));
  });
  await assert.rejects(
    GuestAgent.connect(fake.socketPath, { timeoutMs: 600, syncTimeoutMs: 200 }),
    (err: Error) => err instanceof UserError && /did not answer guest-sync/.test(err.message),
  );
});

test("a silent agent makes sync retry with fresh ids; the late replies are sorted out", async () => {
  const held: Array<{ id: unknown }> = [];
  let answered = false;
  fake = await startFakeAgent((req, conn) => {
    if (req.execute === "guest-sync-delimited") {
      held.push({ id: req.arguments?.id });
      if (held.length === 3 && !answered) {
        // The agent "starts" now and answers everything queued, in order.
        answered = true;
        for (const h of held) conn.send(syncReply({ execute: "x", arguments: { id: h.id } }));
      }
    } else if (req.execute === "guest-ping") {
      conn.send(reply({}));
    }
  });
  const agent = await GuestAgent.connect(fake.socketPath, { timeoutMs: 5000, syncTimeoutMs: 150 });
  try {
    await agent.ping();
    const ids = fake.connections[0]!.requests.filter((r) => r.execute === "guest-sync-delimited");
    assert.equal(ids.length, 3);
    assert.equal(new Set(ids.map((r) => r.arguments?.id)).size, 3, "each attempt uses a new id");
    assert.equal(fake.connections[0]!.resets, 3, "each attempt starts with 0xFF");
  } finally {
    agent.close();
  }
});

test("after a command times out, the next command re-syncs first and ignores the late reply", async () => {
  let infoCalls = 0;
  fake = await startFakeAgent((req, conn) => {
    if (req.execute === "guest-sync-delimited") conn.send(syncReply(req));
    else if (req.execute === "guest-info") {
      infoCalls++;
      // The first reply comes too late; it must not be mistaken for the ping's reply.
      if (infoCalls === 1) setTimeout(() => conn.send(reply({ version: "late" })), 300);
    } else if (req.execute === "guest-ping") conn.send(reply({ pong: true }));
  });
  const agent = await GuestAgent.connect(fake.socketPath, { timeoutMs: 2000 });
  try {
    await assert.rejects(agent.execute("guest-info", undefined, { timeoutMs: 100 }), /no answer/);
    await new Promise((r) => setTimeout(r, 400)); // the late reply is now in our buffer
    assert.deepEqual(await agent.execute("guest-ping"), { pong: true });
    const names = fake.connections[0]!.requests.map((r) => r.execute);
    assert.deepEqual(names, [
      "guest-sync-delimited",
      "guest-info",
      "guest-sync-delimited",
      "guest-ping",
    ]);
  } finally {
    agent.close();
  }
});

test("waitForAgent names the socket and the time waited when the agent never answers", async () => {
  fake = await startFakeAgent(() => undefined); // accepts, like QEMU before the guest boots
  const started = Date.now();
  await assert.rejects(
    waitForAgent(fake.socketPath, { timeoutMs: 700, intervalMs: 50, syncTimeoutMs: 200 }),
    (err: Error) => {
      assert.ok(err instanceof UserError);
      assert.ok(err.message.includes(fake!.socketPath), err.message);
      assert.match(err.message, /after waiting \d+ ms/);
      return true;
    },
  );
  const took = Date.now() - started;
  assert.ok(took >= 650 && took < 3000, `took ${took} ms`);
});

test("waitForAgent waits for the socket to appear and for the agent to answer", async () => {
  let syncs = 0;
  fake = await startFakeAgent((req, conn) => {
    if (req.execute === "guest-sync-delimited" && ++syncs >= 2) conn.send(syncReply(req));
    if (req.execute === "guest-ping") conn.send(reply({}));
  });
  await waitForAgent(fake.socketPath, { timeoutMs: 3000, intervalMs: 50, syncTimeoutMs: 150 });
  assert.ok(syncs >= 2);
});

test("waitForAgent on a missing socket gives up with a UserError", async () => {
  await assert.rejects(
    waitForAgent("/nonexistent/qnet/qga.sock", { timeoutMs: 300, intervalMs: 50 }),
    (err: Error) => err instanceof UserError && err.message.includes("/nonexistent/qnet/qga.sock"),
  );
});

test("waitForAgent stops when its signal aborts", async () => {
  fake = await startFakeAgent(() => undefined);
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error("stop now")), 200);
  const started = Date.now();
  await assert.rejects(
    waitForAgent(fake.socketPath, {
      timeoutMs: 10_000,
      intervalMs: 50,
      syncTimeoutMs: 100,
      signal: ac.signal,
    }),
    /stop now/,
  );
  assert.ok(Date.now() - started < 2000);
});
