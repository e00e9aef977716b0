// Namespaces for end-to-end tests: create, snapshot, run in, delete (argv arrays only).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI } from "../../helpers/topology.js";

export function sh(argv: string[], input?: string): string {
  return execFileSync(argv[0]!, argv.slice(1), {
    encoding: "utf8",
    input,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

export function addNetns(name: string): void {
  sh(["ip", "netns", "add", name]);
  sh(["ip", "-n", name, "link", "set", "lo", "up"]);
}

export function delNetns(name: string): void {
  spawnSync("ip", ["netns", "del", name]);
}

/** `ip -json` link, address and route dumps of a namespace, for before/after comparison. */
export function snapshot(ns: string): { link: unknown; addr: unknown; route: unknown } {
  const j = (args: string[]) => JSON.parse(sh(["ip", "-n", ns, "-json", ...args]) || "[]");
  return {
    link: j(["link", "show"]),
    addr: j(["addr", "show"]),
    route: j(["route", "show", "table", "all"]),
  };
}

export interface QnetRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** A CLI runner bound to a private state root (removed by `cleanup`). */
export function qnetEnv(): {
  stateRoot: string;
  qnet: (args: string[], timeoutMs?: number) => QnetRun;
  cleanup: () => void;
} {
  const stateRoot = mkdtempSync(join(tmpdir(), "qnet-e2e-state-"));
  const qnet = (args: string[], timeoutMs = 180_000): QnetRun => {
    const r = spawnSync(
      process.execPath,
      [CLI, args[0]!, "--state-dir", stateRoot, ...args.slice(1)],
      {
        encoding: "utf8",
        timeout: timeoutMs,
      },
    );
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  return { stateRoot, qnet, cleanup: () => rmSync(stateRoot, { recursive: true, force: true }) };
}

/** QEMU processes of a lab (found by the -name process= tag qnet gives them). */
export function qemuPids(lab: string): number[] {
  const r = spawnSync("pgrep", ["-f", `process=qnet:${lab}:`], { encoding: "utf8" });
  return r.stdout.split("\n").filter(Boolean).map(Number);
}

/** An HTTP GET from inside a namespace (node as the client: busybox wget is unreliable here). */
export function httpGet(ns: string, url: string): { ok: boolean; body: string } {
  const script = `require("http").get(${JSON.stringify(url)},{timeout:3000},r=>{let d="";r.on("data",c=>d+=c);r.on("end",()=>{process.stdout.write(d);process.exit(0)})}).on("error",e=>{process.stderr.write(e.message);process.exit(1)}).on("timeout",()=>process.exit(2))`;
  const r = spawnSync("ip", ["netns", "exec", ns, process.execPath, "-e", script], {
    encoding: "utf8",
    timeout: 10_000,
  });
  return { ok: r.status === 0, body: r.stdout };
}

/** The first bytes a TCP server sends (an SSH banner, say), read from inside a namespace; null if none came. */
export function tcpBanner(ns: string, host: string, port: number): string | null {
  const script = `const s=require("net").connect(${port},${JSON.stringify(host)});s.setTimeout(3000,()=>process.exit(2));s.on("data",d=>{process.stdout.write(d);process.exit(0)});s.on("error",()=>process.exit(1))`;
  const r = spawnSync("ip", ["netns", "exec", ns, process.execPath, "-e", script], {
    encoding: "utf8",
    timeout: 10_000,
  });
  return r.status === 0 ? r.stdout : null;
}
