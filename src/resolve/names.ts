// Derived identities: MAC addresses and interface names hashed from stable names, never colliding in a lab.
import { createHash } from "node:crypto";

function digest(...parts: string[]): Buffer {
  return createHash("sha256").update(parts.join("\0")).digest();
}

/**
 * A MAC in QEMU's 52:54:00 range (unicast, locally administered) hashed from lab, VM and NIC index.
 * `taken` holds lower-case MACs already in use; on a collision the next value is taken, deterministically.
 */
export function deriveMac(lab: string, vm: string, nic: number, taken: Set<string>): string {
  const d = digest("mac", lab, vm, String(nic));
  let n = d.readUIntBE(0, 3);
  for (let i = 0; i < 0x1000000; i++) {
    const v = (n + i) % 0x1000000;
    const mac = `52:54:00:${[v >>> 16, (v >>> 8) & 255, v & 255].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;
    if (!taken.has(mac)) {
      taken.add(mac);
      return mac;
    }
  }
  n = 0;
  throw new Error("no free MAC address in 52:54:00:00:00:00/24");
}

/**
 * An interface name of at most 15 bytes: `prefix` + 8 hex digits of a hash. Hashing keeps names of
 * different labs apart; `taken` resolves the rare collision deterministically (next counter).
 */
export function deriveIfname(prefix: string, taken: Set<string>, ...parts: string[]): string {
  for (let attempt = 0; ; attempt++) {
    const name = `${prefix}${digest("ifname", ...parts, String(attempt))
      .toString("hex")
      .slice(0, 8)}`;
    if (!taken.has(name)) {
      taken.add(name);
      return name;
    }
  }
}
