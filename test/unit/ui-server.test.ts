// The `qnet ui` server on loopback (the page as built): the token on every request and WebSocket, the API
// for a topology file, pushed state, consoles shared with one writer, and the command line's checks.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { isLoopback, urlHost } from "../../src/ui/auth.js";
import { ConsoleHub, type ConsoleViewer, readTail } from "../../src/ui/console-hub.js";
import { type LabFacts, topologyFileFacts } from "../../src/ui/lab-facts.js";
import { LabWatcher } from "../../src/ui/live-state.js";
import type { ConsoleMessage, StateMessage, StatusRow, Topology } from "../../src/ui/protocol.js";
import { startUiServer, type UiServer } from "../../src/ui/server.js";
import { compile, runCli } from "../helpers/topology.js";

const LAB = `name: web
networks:
  lan: { type: bridge, subnet: 10.9.0.0/24, forwards: ["tcp:8022:a:22"] }
vms:
  a: { nics: [{ network: lan }] }
  b: { nics: [{ network: lan }] }
`;

interface Opened {
  ws: WebSocket;
  /** The first message (listened for from the start: the server may send it with the handshake). */
  first: Promise<string>;
}

function handshake(url: string, headers: Record<string, string> = {}): Promise<number | Opened> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const first = new Promise<string>((r) => ws.once("message", (d) => r(String(d))));
    ws.once("open", () => resolve({ ws, first }));
    ws.once("unexpected-response", (_q, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("error", reject);
  });
}

describe("qnet ui server: a topology file", () => {
  let ui: UiServer;
  let origin: string;
  const ws = (path: string) => `${origin.replace("http", "ws")}${path}`;

  before(async () => {
    const { lab } = compile(LAB, "web.yaml");
    ui = await startUiServer({ facts: topologyFileFacts(lab, "web.yaml"), initialLab: "web" });
    origin = new URL(ui.url).origin;
  });
  after(() => ui.close());

  test("the URL is on 127.0.0.1 with a long random token", () => {
    assert.match(ui.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{32}$/);
    assert.equal(ui.token, new URL(ui.url).searchParams.get("token"));
  });

  test("no token, a wrong one, or one of another length: 401 on every path", async () => {
    for (const path of ["/", "/assets/app.js", "/api/config", "/api/labs", "/nothing"]) {
      for (const q of ["", "?token=", `?token=${ui.token.slice(1)}`, `?token=${"x".repeat(32)}`]) {
        const r = await fetch(`${origin}${path}${q}`);
        assert.equal(r.status, 401, `${path}${q}`);
        assert.doesNotMatch(await r.text(), new RegExp(ui.token));
      }
    }
    const r = await fetch(`${origin}/api/labs`, { headers: { authorization: "Bearer nope" } });
    assert.equal(r.status, 401);
  });

  test("with the token: the page (and a cookie for its own requests), its assets, the API", async () => {
    const page = await fetch(ui.url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script type="module" src="\/assets\/app\.js">/);
    const cookie = page.headers.get("set-cookie") ?? "";
    assert.match(cookie, /^qnet_ui_\d+=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Strict$/);
    const jar = { cookie: cookie.split(";")[0]! };
    const js = await fetch(`${origin}/assets/app.js`, { headers: jar });
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.ok((await js.arrayBuffer()).byteLength > 100_000, "cytoscape and xterm are bundled");
    const css = await fetch(`${origin}/assets/app.css`, { headers: jar });
    assert.match(await css.text(), /\.xterm/);
    const config = await fetch(`${origin}/api/config`, {
      headers: { authorization: `Bearer ${ui.token}` },
    });
    assert.deepEqual(await config.json(), { initialLab: "web", mode: "file" });
    const topo = (await (
      await fetch(`${origin}/api/labs/web/topology`, { headers: jar })
    ).json()) as Topology;
    assert.equal(topo.source, "file");
    assert.deepEqual(
      topo.nodes.filter((n) => n.kind === "vm").map((n) => n.name),
      ["a", "b"],
    );
    assert.equal((await fetch(`${origin}/api/labs/nope/topology`, { headers: jar })).status, 404);
    assert.equal((await fetch(`${origin}/api/labs/..%2f/topology`, { headers: jar })).status, 404);
  });

  test("security headers: a strict CSP, no referrer, no caching", async () => {
    const r = await fetch(ui.url);
    const csp = r.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /connect-src 'self'/);
    assert.equal(r.headers.get("referrer-policy"), "no-referrer");
    assert.equal(r.headers.get("cache-control"), "no-store");
    assert.equal(r.headers.get("x-content-type-options"), "nosniff");
  });

  test("check on a file is refused with the reason; from another site it is forbidden", async () => {
    const auth = { authorization: `Bearer ${ui.token}` };
    const r = await fetch(`${origin}/api/labs/web/check`, { method: "POST", headers: auth });
    assert.equal(r.status, 409);
    assert.match(((await r.json()) as { error: string }).error, /topology file, not a running lab/);
    const x = await fetch(`${origin}/api/labs/web/check`, {
      method: "POST",
      headers: { ...auth, origin: "http://evil.example" },
    });
    assert.equal(x.status, 403);
    const put = await fetch(`${origin}/api/labs`, { method: "PUT", headers: auth });
    assert.equal(put.status, 405);
  });

  test("WebSockets: 401 without the token, 403 from another site, 404 for what does not exist", async () => {
    assert.equal(await handshake(ws("/ws/labs")), 401);
    assert.equal(
      await handshake(ws(`/ws/labs?token=${ui.token}`), { origin: "http://evil.example" }),
      403,
    );
    assert.equal(
      await handshake(ws(`/ws/labs/web/state?token=${ui.token}`)),
      404,
      "no state for a file",
    );
    assert.equal(await handshake(ws(`/ws/labs/nope/consoles/a?token=${ui.token}`)), 404);
    const list = await handshake(ws(`/ws/labs?token=${ui.token}`));
    assert.ok(typeof list === "object");
    assert.deepEqual(JSON.parse(await list.first), {
      type: "labs",
      labs: [{ name: "web", netns: null, file: "web.yaml", state: "file" }],
    });
    list.ws.close();
    const con = await handshake(ws(`/ws/labs/web/consoles/a?token=${ui.token}`));
    assert.ok(typeof con === "object");
    assert.match(JSON.parse(await con.first).message, /has no VM a to attach to/);
  });
});

test("close(): open WebSockets are closed and the port is released", async () => {
  const { lab } = compile(LAB, "web.yaml");
  const ui = await startUiServer({ facts: topologyFileFacts(lab, "web.yaml"), initialLab: null });
  const origin = new URL(ui.url).origin;
  const { ws } = (await handshake(
    `${origin.replace("http", "ws")}/ws/labs?token=${ui.token}`,
  )) as Opened;
  const closed = new Promise((r) => ws.once("close", r));
  await ui.close(500);
  await closed;
  await assert.rejects(fetch(ui.url), /fetch failed/);
});

describe("live state pushed to viewers", () => {
  const row = (key: string, state: StatusRow["state"]): StatusRow => ({
    key,
    kind: "vm",
    name: key.slice(3),
    state,
    detail: "",
    element: key,
  });

  test("a snapshot first, then only differences; a lab that goes away and comes back anew", async () => {
    const results: Awaited<ReturnType<LabFacts["status"]>>[] = [
      {
        gone: false,
        generation: "g1",
        ok: true,
        rows: [row("vm:a", "present"), row("vm:b", "present")],
      },
      {
        gone: false,
        generation: "g1",
        ok: true,
        rows: [row("vm:a", "present"), row("vm:b", "present")],
      },
      {
        gone: false,
        generation: "g1",
        ok: false,
        rows: [row("vm:a", "present"), row("vm:b", "missing")],
      },
      { gone: true, message: "lab web went down" },
      { gone: false, generation: "g2", ok: true, rows: [row("vm:a", "present")] },
    ];
    let calls = 0;
    const facts = {
      status: async () => results[Math.min(calls++, results.length - 1)]!,
    } as unknown as LabFacts;
    const w = new LabWatcher(facts, "web", 5, () => {});
    const got: StateMessage[] = [];
    const unsubscribe = w.subscribe({ send: (m) => got.push(m) });
    for (let i = 0; i < 100 && calls < results.length + 1; i++) await sleep(5);
    unsubscribe();
    await w.stop();
    assert.deepEqual(
      got.map((m) => m.type),
      ["snapshot", "diff", "gone", "snapshot"],
    );
    const diff = got[1] as Extract<StateMessage, { type: "diff" }>;
    assert.deepEqual(diff.changed, [row("vm:b", "missing")]);
    assert.equal(diff.ok, false);
    assert.equal((got[3] as Extract<StateMessage, { type: "snapshot" }>).generation, "g2");
  });

  test("a second viewer gets the current state at once; nobody watching: no refresh", async () => {
    let calls = 0;
    const facts = {
      status: async () => {
        calls++;
        return { gone: false, generation: "g", ok: true, rows: [row("vm:a", "present")] };
      },
    } as unknown as LabFacts;
    const w = new LabWatcher(facts, "web", 10, () => {});
    const first: StateMessage[] = [];
    const off1 = w.subscribe({ send: (m) => first.push(m) });
    for (let i = 0; i < 50 && first.length === 0; i++) await sleep(5);
    const second: StateMessage[] = [];
    const off2 = w.subscribe({ send: (m) => second.push(m) });
    assert.deepEqual(
      second.map((m) => m.type),
      ["snapshot"],
    );
    off1();
    off2();
    await sleep(50);
    const n = calls;
    await sleep(50);
    assert.equal(calls, n, "refreshing stopped with the last viewer");
    await w.stop();
  });
});

describe("a console shared by viewers (a unix socket standing in for QEMU's serial socket)", () => {
  let dir: string;
  let server: Server;
  let peer: Socket | null = null;
  let received = "";
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "qnet-ui-console-"));
    writeFileSync(join(dir, "vm.console.log"), `${"old line\n".repeat(5000)}login: `);
    server = createServer((s) => {
      peer = s;
      s.on("data", (d) => {
        received += d;
      });
    });
    await new Promise<void>((r) => server.listen(join(dir, "vm.serial"), r));
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  class Viewer implements ConsoleViewer {
    data = "";
    control: ConsoleMessage[] = [];
    closed: string | null = null;
    sendData(b: Buffer) {
      this.data += b;
    }
    sendControl(m: ConsoleMessage) {
      this.control.push(m);
    }
    close(_code: number, reason: string) {
      this.closed = reason;
    }
  }

  test("the first viewer types, others watch and are told; the next one takes over", async () => {
    let emptied = 0;
    const hub = new ConsoleHub(
      "vm",
      { socket: join(dir, "vm.serial"), log: join(dir, "vm.console.log") },
      () => emptied++,
    );
    const a = new Viewer();
    const b = new Viewer();
    await hub.join(a);
    await hub.join(b);
    // Each starts with the end of the log, from a line start, at most 16 KiB.
    assert.ok(a.data.endsWith("old line\nlogin: "));
    assert.ok(a.data.startsWith("old line\n") && a.data.length <= 16 * 1024);
    assert.deepEqual(a.control.at(-1), {
      type: "role",
      writer: true,
      message: "connected to vm's serial console",
    });
    const bRole = b.control.at(-1);
    assert.ok(bRole?.type === "role" && !bRole.writer && /read-only/.test(bRole.message));
    hub.input(a, Buffer.from("root\n"));
    hub.input(b, Buffer.from("intruder\n"));
    hub.input(b, Buffer.from("again\n"));
    for (let i = 0; i < 50 && !received.includes("root"); i++) await sleep(10);
    assert.equal(received, "root\n");
    assert.equal(b.control.filter((m) => /were not sent/.test(m.message)).length, 1);
    peer!.write("# ");
    for (let i = 0; i < 50 && !b.data.endsWith("# "); i++) await sleep(10);
    assert.ok(a.data.endsWith("# ") && b.data.endsWith("# "), "output goes to every viewer");
    hub.leave(a);
    assert.deepEqual(b.control.at(-1), {
      type: "role",
      writer: true,
      message: "the other viewer left: you now type into vm's console",
    });
    hub.input(b, Buffer.from("ls\n"));
    for (let i = 0; i < 50 && !received.includes("ls"); i++) await sleep(10);
    assert.equal(received, "root\nls\n");
    hub.leave(b);
    assert.equal(emptied, 1);
    assert.equal(hub.viewerCount, 0);
  });

  test("QEMU closing the console closes its viewers with the reason", async () => {
    const hub = new ConsoleHub(
      "vm",
      { socket: join(dir, "vm.serial"), log: join(dir, "none.log") },
      () => {},
    );
    const a = new Viewer();
    await hub.join(a);
    assert.equal(a.data, "", "no log: nothing replayed");
    for (let i = 0; i < 50 && !peer; i++) await sleep(10);
    peer!.destroy();
    for (let i = 0; i < 50 && a.closed === null; i++) await sleep(10);
    assert.equal(a.closed, "console closed");
    assert.match(a.control.at(-1)!.message, /console closed \(QEMU stopped\)/);
  });

  test("no socket: the viewer is told the console is unavailable", async () => {
    const hub = new ConsoleHub(
      "vm",
      { socket: join(dir, "nope"), log: join(dir, "nope.log") },
      () => {},
    );
    const a = new Viewer();
    await hub.join(a);
    assert.match(
      a.control.at(-1)!.message,
      /cannot open vm's console: .*ENOENT.*is the VM running/,
    );
    assert.equal(a.closed, "console unavailable");
  });

  test("readTail: a short file whole, an unreadable one empty", () => {
    writeFileSync(join(dir, "short.log"), "a\nb\n");
    assert.equal(readTail(join(dir, "short.log")).toString(), "a\nb\n");
    assert.equal(readTail(join(dir, "missing.log")).length, 0);
  });
});

test("isLoopback and urlHost", () => {
  for (const a of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"])
    assert.equal(isLoopback(a), true, a);
  for (const a of ["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.org", "128.0.0.1"])
    assert.equal(isLoopback(a), false, a);
  assert.equal(urlHost("::1"), "[::1]");
  assert.equal(urlHost("127.0.0.1"), "127.0.0.1");
});

describe("qnet ui: the command line", () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "qnet-ui-cli-"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test("--help names the flags and shows examples", () => {
    const r = runCli(["ui", "--help"]);
    assert.equal(r.status, 0);
    for (const s of ["--port", "--listen", "--state-dir", "Examples:", "qnet ui lab", "401"])
      assert.ok(r.stdout.includes(s), s);
  });

  test("an unknown lab or a bad port is a usage error (exit 2), nothing served", () => {
    const r = runCli(["ui", "nolab", "--state-dir", root]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no topology file and no lab that is up named "nolab"/);
    assert.equal(r.stdout, "");
    const p = runCli(["ui", "--port", "70000", "--state-dir", root]);
    assert.equal(p.status, 2);
    assert.match(p.stderr, /--port "70000" is not a port/);
  });

  test("an invalid topology file: its located errors, exit 3", () => {
    const f = join(root, "bad.yaml");
    writeFileSync(f, "name: x\nvms:\n  a: { nics: [{ network: nowhere }] }\n");
    const r = runCli(["ui", f]);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /bad\.yaml:3:\d+/);
  });
});
