// IPv4 arithmetic on top of ipaddr.js: parsing strictly, subnets as integer ranges.
import ipaddr from "ipaddr.js";

export interface Subnet {
  /** Network address as an unsigned 32-bit integer. */
  base: number;
  prefix: number;
  /** Number of addresses (2^(32-prefix)). */
  size: number;
}

/** Strict dotted-quad IPv4 (no octal, hex or short forms), or null. */
export function parseIpv4(s: unknown): number | null {
  if (typeof s !== "string" || !ipaddr.IPv4.isValidFourPartDecimal(s)) return null;
  const bytes = ipaddr.IPv4.parse(s).toByteArray();
  return ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export type CidrResult = { ok: true; subnet: Subnet } | { ok: false; reason: string };

export function parseCidr(s: unknown): CidrResult {
  if (typeof s !== "string") return { ok: false, reason: "expected a string such as 10.0.2.0/24" };
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  const addr = m ? parseIpv4(m[1]) : null;
  const prefix = m ? Number(m[2]) : Number.NaN;
  if (addr === null || !(prefix >= 0 && prefix <= 32)) {
    return { ok: false, reason: "expected an IPv4 subnet in CIDR form such as 10.0.2.0/24" };
  }
  const size = 2 ** (32 - prefix);
  const base = prefix === 0 ? 0 : (addr & (~(size - 1) >>> 0)) >>> 0;
  if (base !== addr) {
    return {
      ok: false,
      reason: `host bits are set; the network is ${formatIpv4(base)}/${prefix}`,
    };
  }
  if (prefix > 30) return { ok: false, reason: "the prefix must be /30 or shorter to hold VMs" };
  return { ok: true, subnet: { base, prefix, size } };
}

export function inSubnet(ip: number, s: Subnet): boolean {
  return ip >= s.base && ip < s.base + s.size;
}

export function broadcast(s: Subnet): number {
  return s.base + s.size - 1;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

export function formatSubnet(s: Subnet): string {
  return `${formatIpv4(s.base)}/${s.prefix}`;
}
