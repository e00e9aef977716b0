// The `qnet ui` web server: the page, its JSON API and its WebSockets (state, lab list, consoles), behind a token.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { hostname } from "node:os";
import { type WebSocket, WebSocketServer } from "ws";
import { isName } from "../model/names.js";
import { type Asset, loadAssets } from "./assets.js";
import { cookieName, newToken, sameOrigin, tokenSource, urlHost } from "./auth.js";
import { ConsoleHub, type ConsoleViewer } from "./console-hub.js";
import type { LabFacts } from "./lab-facts.js";
import { LabWatcher } from "./live-state.js";
import type { LabsMessage, StateMessage, UiConfig } from "./protocol.js";
import { nicId } from "./topology.js";

export interface UiServerOptions {
  facts: LabFacts;
  /** The lab the page opens first (null: the list of labs). */
  initialLab: string | null;
  /** Address to listen on (default 127.0.0.1). */
  listen?: string;
  /** Port (0: any free port). */
  port?: number;
  /** Pause between two status refreshes of a watched lab (default 1000 ms). */
  intervalMs?: number;
  token?: string;
  /** Problems worth telling the person who started the server (stderr). */
  log?: (message: string) => void;
}

export interface UiServer {
  url: string;
  port: number;
  token: string;
  /** Close every connection, stop every refresh and wait for running checks (at most `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

/** A viewer whose browser cannot keep up is dropped past this much unsent console output. */
const MAX_BUFFERED = 4 * 1024 * 1024;

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { ...SECURITY_HEADERS, "content-type": type });
  res.end(body);
}

const sendJson = (res: ServerResponse, status: number, value: unknown) =>
  send(res, status, "application/json; charset=utf-8", JSON.stringify(value));

function refuseUpgrade(socket: Socket, status: number, text: string): void {
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${text.length + 1}\r\n\r\n${text}\n`,
  );
}

/** Path segments after a prefix, decoded; null when the path does not start with it. */
function segments(path: string, prefix: string): string[] | null {
  if (!path.startsWith(prefix)) return null;
  try {
    return path.slice(prefix.length).split("/").map(decodeURIComponent);
  } catch {
    return null;
  }
}

export async function startUiServer(o: UiServerOptions): Promise<UiServer> {
  const assets: Map<string, Asset> = loadAssets();
  const token = o.token ?? newToken();
  const facts = o.facts;
  const log = o.log ?? (() => {});
  const intervalMs = o.intervalMs ?? 1000;
  const watchers = new Map<string, LabWatcher>();
  const hubs = new Map<string, ConsoleHub>();
  const checks = new Map<string, Promise<unknown>>();
  const sockets = new Set<WebSocket>();
  let port = 0;

  const watcher = (lab: string) => {
    let w = watchers.get(lab);
    if (!w) {
      // A failure that repeats every refresh is told once (on stderr and to the page).
      let lastError = "";
      const created: LabWatcher = new LabWatcher(facts, lab, intervalMs, (e) => {
        const message = `status of lab ${lab} failed: ${(e as Error).message}`;
        if (message === lastError) return;
        lastError = message;
        log(message);
        created.broadcast({ type: "error", at: new Date().toISOString(), message });
      });
      w = created;
      watchers.set(lab, w);
    }
    return w;
  };

  // The lab list, pushed to list viewers whenever it changes.
  const listViewers = new Set<WebSocket>();
  let listTimer: NodeJS.Timeout | null = null;
  let lastList = "";
  const pushList = (only?: WebSocket) => {
    const m: LabsMessage = { type: "labs", labs: facts.list() };
    const text = JSON.stringify(m);
    if (only) only.send(text);
    else if (text !== lastList) for (const ws of listViewers) ws.send(text);
    lastList = text;
  };

  const runCheck = (lab: string) => {
    let p = checks.get(lab);
    if (p) return p;
    const w = watchers.get(lab);
    w?.broadcast({ type: "check", phase: "running" });
    p = facts
      .check(lab)
      .then(
        (report) => {
          w?.broadcast({ type: "check", phase: "done", report });
          return report;
        },
        (e: unknown) => {
          w?.broadcast({ type: "check", phase: "failed", message: (e as Error).message });
          throw e;
        },
      )
      .finally(() => {
        checks.delete(lab);
        w?.poke();
      });
    checks.set(lab, p);
    return p;
  };

  /** GET /api/labs/LAB/capture?vm=VM&nic=N[&count=C][&seconds=S]: a pcap file to download. */
  async function sendCapture(res: ServerResponse, lab: string, q: URLSearchParams): Promise<void> {
    const vm = q.get("vm") ?? "";
    const nic = Number(q.get("nic") ?? "0");
    const count = Number(q.get("count") ?? "100");
    const seconds = Number(q.get("seconds") ?? "10");
    const t = facts.topology(lab);
    if (!t) return sendJson(res, 404, { error: `no lab ${lab}` });
    if (!t.nodes.some((n) => n.id === nicId(vm, nic)))
      return sendJson(res, 404, { error: `lab ${lab} has no VM ${vm} with NIC ${nic}` });
    if (!Number.isInteger(count) || count < 1 || count > 100_000)
      return sendJson(res, 400, { error: "count: a whole number from 1 to 100000" });
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 300)
      return sendJson(res, 400, { error: "seconds: a whole number from 1 to 300" });
    let pcap: Buffer;
    try {
      pcap = await facts.capture(lab, vm, nic, { count, seconds });
    } catch (e) {
      return sendJson(res, 409, { error: (e as Error).message });
    }
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "application/vnd.tcpdump.pcap",
      "content-disposition": `attachment; filename="${lab}-${vm}-nic${nic}.pcap"`,
      "content-length": String(pcap.length),
    });
    res.end(pcap);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://qnet.invalid");
    const how = tokenSource(req, url, token, port);
    if (!how) {
      res.writeHead(401, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8" });
      res.end("401 Unauthorized: open the URL (with its token) that `qnet ui` printed\n");
      return;
    }
    const path = url.pathname;
    if (req.method === "POST") {
      const parts = segments(path, "/api/labs/");
      if (parts?.length !== 2 || parts[1] !== "check" || !isName(parts[0]!))
        return sendJson(res, 404, { error: "not found" });
      if (!sameOrigin(req)) return sendJson(res, 403, { error: "cross-origin request refused" });
      const lab = parts[0]!;
      if (!facts.topology(lab)) return sendJson(res, 404, { error: `no lab ${lab}` });
      try {
        return sendJson(res, 200, await runCheck(lab));
      } catch (e) {
        return sendJson(res, 409, { error: (e as Error).message });
      }
    }
    if (req.method !== "GET" && req.method !== "HEAD")
      return sendJson(res, 405, { error: "method not allowed" });
    const asset = assets.get(path);
    if (asset) {
      const headers: Record<string, string> = { ...SECURITY_HEADERS, "content-type": asset.type };
      // The page keeps the token for its own requests (assets, API, WebSockets) in a cookie.
      if (path === "/" && how === "query")
        headers["set-cookie"] = `${cookieName(port)}=${token}; Path=/; HttpOnly; SameSite=Strict`;
      res.writeHead(200, headers);
      res.end(req.method === "HEAD" ? undefined : asset.body);
      return;
    }
    if (path === "/api/config") {
      const c: UiConfig = { initialLab: o.initialLab, mode: facts.mode };
      return sendJson(res, 200, c);
    }
    if (path === "/api/labs") return sendJson(res, 200, facts.list());
    const parts = segments(path, "/api/labs/");
    if (parts?.length === 2 && parts[1] === "topology" && isName(parts[0]!)) {
      const t = facts.topology(parts[0]!);
      return t ? sendJson(res, 200, t) : sendJson(res, 404, { error: `no lab ${parts[0]}` });
    }
    if (parts?.length === 2 && parts[1] === "capture" && isName(parts[0]!))
      return sendCapture(res, parts[0]!, url.searchParams);
    return sendJson(res, 404, { error: "not found" });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      // The path only: the query may hold the token.
      log(
        `${req.method} ${new URL(req.url ?? "/", "http://qnet.invalid").pathname}: ${(e as Error).message}`,
      );
      if (!res.headersSent) sendJson(res, 500, { error: (e as Error).message });
      else res.destroy();
    });
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });

  const consoleViewer = (ws: WebSocket): ConsoleViewer => ({
    sendData(bytes) {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > MAX_BUFFERED) {
        ws.close(1008, "too slow: console output piled up");
        return;
      }
      ws.send(bytes, { binary: true });
    },
    sendControl(m) {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
    },
    close(code, reason) {
      ws.close(code, reason);
    },
  });

  function onConsole(ws: WebSocket, lab: string, vm: string): void {
    const paths = facts.serial(lab, vm);
    if (!paths) {
      ws.send(
        JSON.stringify({ type: "closed", message: `lab ${lab} has no VM ${vm} to attach to` }),
      );
      ws.close(1008, "no such VM");
      return;
    }
    const key = `${lab}/${vm}`;
    let hub = hubs.get(key);
    if (!hub) {
      const created: ConsoleHub = new ConsoleHub(vm, paths, () => {
        if (hubs.get(key) === created && created.viewerCount === 0) hubs.delete(key);
      });
      hub = created;
      hubs.set(key, hub);
    }
    const h = hub;
    const v = consoleViewer(ws);
    ws.on("message", (data, isBinary) => {
      const buf = Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.isBuffer(data)
          ? data
          : Buffer.from(data as ArrayBuffer);
      h.input(v, isBinary ? buf : Buffer.from(buf.toString("utf8")));
    });
    ws.on("close", () => h.leave(v));
    void h.join(v);
  }

  function onState(ws: WebSocket, lab: string): void {
    const unsubscribe = watcher(lab).subscribe({
      send(m: StateMessage) {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
      },
    });
    ws.on("close", unsubscribe);
  }

  function onList(ws: WebSocket): void {
    listViewers.add(ws);
    pushList(ws);
    listTimer ??= setInterval(() => pushList(), 2000);
    ws.on("close", () => {
      listViewers.delete(ws);
      if (listViewers.size === 0 && listTimer) {
        clearInterval(listTimer);
        listTimer = null;
      }
    });
  }

  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const url = new URL(req.url ?? "/", "http://qnet.invalid");
    if (!tokenSource(req, url, token, port)) return refuseUpgrade(socket, 401, "Unauthorized");
    if (!sameOrigin(req)) return refuseUpgrade(socket, 403, "Forbidden");
    const path = url.pathname;
    const parts = segments(path, "/ws/labs/");
    let route: ((ws: WebSocket) => void) | null = null;
    if (path === "/ws/labs") route = onList;
    else if (parts && isName(parts[0] ?? "") && facts.topology(parts[0]!)) {
      const lab = parts[0]!;
      if (parts.length === 2 && parts[1] === "state" && facts.mode === "labs")
        route = (ws) => onState(ws, lab);
      else if (parts.length === 3 && parts[1] === "consoles")
        route = (ws) => onConsole(ws, lab, parts[2]!);
    }
    if (!route) return refuseUpgrade(socket, 404, "Not Found");
    const r = route;
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on("close", () => sockets.delete(ws));
      ws.on("error", () => ws.terminate());
      r(ws);
    });
  });

  const listen = o.listen ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: listen, port: o.port ?? 0 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | null = null;
  const close = (graceMs = 3000) => {
    closing ??= (async () => {
      server.close();
      if (listTimer) clearInterval(listTimer);
      for (const h of hubs.values()) h.closeAll("server stopping");
      for (const ws of sockets) ws.close(1001, "server stopping");
      const grace = new Promise((r) => setTimeout(r, graceMs).unref());
      await Promise.race([
        Promise.allSettled([...[...watchers.values()].map((w) => w.stop()), ...checks.values()]),
        grace,
      ]);
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
    })();
    return closing;
  };

  // Every address: the URL names this machine, as other machines would reach it.
  const shown = listen === "0.0.0.0" || listen === "::" ? hostname() : listen;
  return { url: `http://${urlHost(shown)}:${port}/?token=${token}`, port, token, close };
}
