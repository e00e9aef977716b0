// JsonStream: brace-matched objects across chunk boundaries, sentinels, big messages, EOF, timeouts.

import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import {
  connectUnix,
  JsonStream,
  ProtocolError,
  SocketTimeoutError,
} from "../../src/host/unix-json.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qnet-unixjson-unit-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A server that writes `chunks` (with small pauses) to each client, then optionally closes. */
async function pair(
  chunks: Array<string | Buffer>,
  end = false,
): Promise<{ stream: JsonStream; server: net.Server }> {
  const socketPath = path.join(dir, `s${n++}.sock`);
  const server = net.createServer(async (sock) => {
    for (const c of chunks) {
      sock.write(c);
      await new Promise((r) => setTimeout(r, 5));
    }
    if (end) sock.end();
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  const sock = await connectUnix(socketPath, { timeoutMs: 1000 });
  return { stream: new JsonStream(sock, socketPath), server };
}

test("objects split across chunks, with CRLF and noise between them", async () => {
  const { stream, server } = await pair([
    '{"a":',
    '"x}"}\r\n  {"b"',
    ':{"c":[1,2]}}\n',
    '{"s":"\\"}{"}',
  ]);
  try {
    assert.deepEqual(await stream.readObject(1000, "a"), { a: "x}" });
    assert.deepEqual(await stream.readObject(1000, "b"), { b: { c: [1, 2] } });
    assert.deepEqual(await stream.readObject(1000, "s"), { s: '"}{' });
  } finally {
    stream.close();
    server.close();
  }
});

test("skipToSentinel drops everything before 0xFF; 0xFF voids a partial object", async () => {
  const { stream, server } = await pair([
    '{"old":1}\n{"partial": "',
    Buffer.from([0xff]),
    '{"new":2}\n{"half":',
    Buffer.from([0xff]),
    '{"after":3}\n',
  ]);
  try {
    await stream.skipToSentinel(1000, "sentinel");
    assert.deepEqual(await stream.readObject(1000, "new"), { new: 2 });
    assert.deepEqual(await stream.readObject(1000, "after"), { after: 3 });
  } finally {
    stream.close();
    server.close();
  }
});

test("a 3 MiB object arriving in many chunks is read whole", async () => {
  const big = "x".repeat(3 * 1024 * 1024);
  const text = JSON.stringify({ big });
  const chunks: string[] = [];
  for (let i = 0; i < text.length; i += 200_000) chunks.push(text.slice(i, i + 200_000));
  const { stream, server } = await pair(chunks);
  try {
    const got = await stream.readObject(5000, "big");
    assert.equal((got.big as string).length, big.length);
  } finally {
    stream.close();
    server.close();
  }
});

test("timeout and EOF are distinct errors", async () => {
  const { stream, server } = await pair(['{"only":1}'], true);
  try {
    assert.deepEqual(await stream.readObject(1000, "only"), { only: 1 });
    await assert.rejects(stream.readObject(1000, "more"), ProtocolError);
  } finally {
    stream.close();
    server.close();
  }
  const p = await pair([]);
  try {
    await assert.rejects(p.stream.readObject(100, "nothing"), SocketTimeoutError);
  } finally {
    p.stream.close();
    p.server.close();
  }
});

test("invalid JSON inside braces is a ProtocolError", async () => {
  const { stream, server } = await pair(["{not json}"]);
  try {
    await assert.rejects(stream.readObject(1000, "junk"), ProtocolError);
  } finally {
    stream.close();
    server.close();
  }
});
