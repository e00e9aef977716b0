// A scriptable fake qemu-ga on a unix socket in a temp dir, for testing the client's framing.

import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export interface FakeRequest {
  execute: string;
  arguments?: Record<string, unknown>;
}

/** What the fake does with one request: bytes to write (strings are sent as UTF-8), or nothing. */
export type FakeHandler = (req: FakeRequest, conn: FakeConnection) => void;

export interface FakeConnection {
  send(data: string | Buffer): void;
  /** Every request this connection received, in order. */
  requests: FakeRequest[];
  /** Number of 0xFF bytes the client sent. */
  resets: number;
}

export interface FakeAgent {
  dir: string;
  socketPath: string;
  connections: FakeConnection[];
  close(): Promise<void>;
}

/** A standard reply for the sync request, prefixed with the 0xFF sentinel. */
export function syncReply(req: FakeRequest): Buffer {
  return Buffer.concat([
    Buffer.from([0xff]),
    Buffer.from(`${JSON.stringify({ return: req.arguments?.id })}\n`),
  ]);
}

export function reply(value: unknown): string {
  return `${JSON.stringify({ return: value })}\n`;
}

/**
 * Start a fake agent. The client's bytes are parsed independently of the code under test:
 * 0xFF bytes are counted and dropped, the rest is split on newlines (the client ends each
 * request with one).
 */
export async function startFakeAgent(handler: FakeHandler): Promise<FakeAgent> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qnet-qga-unit-"));
  const socketPath = path.join(dir, "qga.sock");
  const connections: FakeConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => undefined);
    const conn: FakeConnection = {
      send: (data) => {
        if (!sock.destroyed) sock.write(data);
      },
      requests: [],
      resets: 0,
    };
    connections.push(conn);
    let pending = "";
    sock.on("data", (chunk: Buffer) => {
      const kept: number[] = [];
      for (const b of chunk) {
        if (b === 0xff) conn.resets++;
        else kept.push(b);
      }
      pending += Buffer.from(kept).toString("utf8");
      for (;;) {
        const nl = pending.indexOf("\n");
        if (nl < 0) break;
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (!line) continue;
        const req = JSON.parse(line) as FakeRequest;
        conn.requests.push(req);
        handler(req, conn);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    dir,
    socketPath,
    connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
