// Parses `ip -json` output: links (with details) and addresses into HostLinks; routes of one device.
import type { AddrInfo, HostAddr, HostLink, RouteInfo } from "./types.js";

type Json = Record<string, unknown>;

const num = (v: unknown): number | null => (typeof v === "number" ? v : null);
const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);
const obj = (v: unknown): Json | null =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : null;

/** A JSON array of objects, as every `ip -json` listing prints; "" is an empty list. */
export function parseJsonArray(text: string, what: string): Json[] {
  const t = text.trim();
  if (t === "") return [];
  const v: unknown = JSON.parse(t);
  if (!Array.isArray(v)) throw new Error(`unexpected output of ${what}: not an array`);
  return v.filter((x): x is Json => obj(x) !== null);
}

/** Parse the output of `ip -json -details link show` and `ip -json addr show`. */
export function parseIpJson(linkJson: string, addrJson: string): HostLink[] {
  const addrsByName = new Map<string, HostAddr[]>();
  for (const a of parseJsonArray(addrJson, "ip -json addr show")) {
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
  for (const l of parseJsonArray(linkJson, "ip -json link show")) {
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
      noCarrier: flags.includes("NO-CARRIER"),
      mac: str(l.address),
      mtu: num(l.mtu),
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
      ...(kind === "vxlan"
        ? {
            vxlan: {
              vni: num(data?.id),
              local: str(data?.local),
              port: num(data?.port),
              learning: typeof data?.learning === "boolean" ? data.learning : null,
            },
          }
        : {}),
      addrs: addrsByName.get(name) ?? [],
    });
  }
  return out;
}

/** The interface of the first IPv4 default route in `ip -json -4 route show default`. */
export function parseDefaultRouteDev(text: string): string | null {
  try {
    const routes = parseJsonArray(text, "ip -json route show default");
    return routes.map((r) => str(r.dev)).find((d) => d !== null) ?? null;
  } catch {
    return null;
  }
}

/** One device's full `addr_info` from `ip -json addr show dev X`. */
export function parseAddrInfo(text: string): AddrInfo[] {
  const first = parseJsonArray(text, "ip -json addr show")[0];
  return (first?.addr_info as AddrInfo[] | undefined) ?? [];
}

/** Routes of `ip -json -4|-6 route show table all dev X`, tagged with their family. */
export function parseRoutes(text: string, family: RouteInfo["family"]): RouteInfo[] {
  return parseJsonArray(text, "ip -json route show").map(
    (r) => ({ family, ...r }) as unknown as RouteInfo,
  );
}
