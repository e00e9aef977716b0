// Parses `ss -Htlnp` / `ss -Hulnp`: listening sockets with address, port, interface and process.
import type { Listener } from "./types.js";

/** Split `addr[%iface]:port` (IPv6 in brackets). */
export function splitLocal(
  local: string,
): { addr: string; iface: string | null; port: number } | null {
  const colon = local.lastIndexOf(":");
  if (colon < 0) return null;
  const port = Number(local.slice(colon + 1));
  if (!Number.isInteger(port)) return null;
  let addr = local.slice(0, colon);
  let iface: string | null = null;
  const pct = addr.indexOf("%");
  if (pct >= 0) {
    iface = addr.slice(pct + 1).replace(/\]$/, "");
    addr = addr.slice(0, pct) + (addr.endsWith("]") ? "]" : "");
  }
  addr = addr.replace(/^\[|\]$/g, "");
  return { addr, iface, port };
}

export function parseSs(text: string, proto: Listener["proto"]): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split("\n")) {
    const w = line.trim().split(/\s+/);
    // State Recv-Q Send-Q Local Peer [Process]
    if (w.length < 5) continue;
    const local = splitLocal(w[3]!);
    if (!local) continue;
    const rest = w.slice(5).join(" ");
    const procs = [...rest.matchAll(/\("([^"]*)",pid=(\d+)/g)].map((m) => ({
      name: m[1]!,
      pid: Number(m[2]),
    }));
    out.push({ proto, ...local, procs });
  }
  return out;
}

export const isWildcard = (addr: string) => addr === "0.0.0.0" || addr === "*" || addr === "::";

/** Would binding `addr:port` (on `iface`, if given) collide with this listener? */
export function collides(
  l: Listener,
  proto: Listener["proto"],
  addr: string,
  port: number,
  iface: string | null = null,
): boolean {
  if (l.proto !== proto || l.port !== port) return false;
  if (l.iface && iface && l.iface !== iface) return false;
  if (l.addr.includes(":") && l.addr !== "::" && !l.addr.startsWith("::ffff:")) return false;
  const la = l.addr.replace(/^::ffff:/, "");
  return isWildcard(la) || isWildcard(addr) || la === addr;
}

export function describeProcs(l: Listener): string {
  return l.procs.length
    ? l.procs.map((p) => `${p.name} (pid ${p.pid})`).join(", ")
    : "an unknown process";
}
