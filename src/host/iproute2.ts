// Observes the host's links and addresses in one `ip -json` dump, parsed into a typed snapshot.
import type { Runner } from "./runner.js";

export interface HostAddr {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
}

export interface HostBridgeInfo {
  stpState: number | null;
  forwardDelay: number | null;
  nfCallIptables: number | null;
  nfCallIp6tables: number | null;
  nfCallArptables: number | null;
}

export interface HostTapInfo {
  /** "tap" or "tun". */
  type: string | null;
  /** Owner as `ip` prints it (a user name, or a uid when it has none), null: root/any. */
  user: string | null;
  multiQueue: boolean;
}

export interface HostLink {
  name: string;
  index: number;
  /** linkinfo.info_kind: "bridge", "tun", "veth", ...; null for plain devices (lo, physical NICs). */
  kind: string | null;
  /** The interface alias (ifalias), qnet's ownership mark; null when unset. */
  alias: string | null;
  master: string | null;
  /** Administratively up (the UP flag). */
  up: boolean;
  bridge: HostBridgeInfo | null;
  tap: HostTapInfo | null;
  addrs: HostAddr[];
}

export interface HostSnapshot {
  /** Network namespace observed (null: the current one). */
  netns: string | null;
  links: HostLink[];
}

/** One dump of links (with details) and one of addresses: two `ip` processes, no per-device calls. */
export async function observeHost(runner: Runner): Promise<HostSnapshot> {
  const [links, addrs] = await Promise.all([
    runner.run(["ip", "-json", "-details", "link", "show"]),
    runner.run(["ip", "-json", "addr", "show"]),
  ]);
  return { netns: runner.netns, links: parseIpJson(links.stdout, addrs.stdout) };
}

type Json = Record<string, unknown>;

const num = (v: unknown): number | null => (typeof v === "number" ? v : null);
const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);
const obj = (v: unknown): Json | null =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : null;

function parseArray(text: string, what: string): Json[] {
  const t = text.trim();
  if (t === "") return [];
  const v: unknown = JSON.parse(t);
  if (!Array.isArray(v)) throw new Error(`unexpected output of ip -json ${what}: not an array`);
  return v.filter((x): x is Json => obj(x) !== null);
}

/** Parse the output of `ip -json -details link show` and `ip -json addr show` (pure). */
export function parseIpJson(linkJson: string, addrJson: string): HostLink[] {
  const addrsByName = new Map<string, HostAddr[]>();
  for (const a of parseArray(addrJson, "addr show")) {
    const name = str(a.ifname);
    if (!name) continue;
    const list: HostAddr[] = [];
    for (const i of Array.isArray(a.addr_info) ? a.addr_info : []) {
      const info = obj(i);
      const family = info?.family;
      const local = str(info?.local);
      const prefixlen = num(info?.prefixlen);
      if ((family === "inet" || family === "inet6") && local && prefixlen !== null) {
        list.push({ family, local, prefixlen });
      }
    }
    addrsByName.set(name, list);
  }
  const out: HostLink[] = [];
  for (const l of parseArray(linkJson, "link show")) {
    const name = str(l.ifname);
    if (!name) continue;
    const info = obj(l.linkinfo);
    const kind = str(info?.info_kind);
    const data = obj(info?.info_data);
    const flags = Array.isArray(l.flags) ? l.flags : [];
    out.push({
      name,
      index: num(l.ifindex) ?? 0,
      kind,
      alias: str(l.ifalias),
      master: str(l.master),
      up: flags.includes("UP"),
      bridge:
        kind === "bridge"
          ? {
              stpState: num(data?.stp_state),
              forwardDelay: num(data?.forward_delay),
              nfCallIptables: num(data?.nf_call_iptables),
              nfCallIp6tables: num(data?.nf_call_ip6tables),
              nfCallArptables: num(data?.nf_call_arptables),
            }
          : null,
      tap:
        kind === "tun"
          ? {
              type: str(data?.type),
              user: data?.user === undefined ? null : String(data.user),
              multiQueue: data?.multi_queue === true,
            }
          : null,
      addrs: addrsByName.get(name) ?? [],
    });
  }
  return out;
}
