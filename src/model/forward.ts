// The forward syntax: `[proto:][hostaddr:]hostport:guestport`, and on bridge networks `...:vm:guestport`.

import { parseIpv4 } from "./ipv4.js";
import type { Proto } from "./lab.js";
import { isName } from "./names.js";

export interface ParsedForward {
  proto: Proto;
  /** null: not given (qnet binds 127.0.0.1). */
  hostAddr: string | null;
  hostPort: number;
  vm: string | null;
  guestPort: number;
}

export type ForwardResult = { ok: true; value: ParsedForward } | { ok: false; reason: string };

function port(s: string | undefined): number | null {
  if (s === undefined || !/^\d{1,5}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : null;
}

/** Parse one forward. `withVm`: the bridge-network form, whose second-to-last field names the VM. */
export function parseForward(spec: unknown, withVm: boolean): ForwardResult {
  const shape = withVm
    ? "[proto:][hostaddr:]hostport:vm:guestport"
    : "[proto:][hostaddr:]hostport:guestport";
  if (typeof spec !== "string") return { ok: false, reason: `expected a string ${shape}` };
  const parts = spec.split(":");
  let proto: Proto = "tcp";
  if (parts[0] === "tcp" || parts[0] === "udp") proto = parts.shift() as Proto;
  const guest = parts.pop();
  const vm = withVm ? parts.pop() : undefined;
  const host = parts.pop();
  const addr = parts.pop();
  if (
    parts.length > 0 ||
    guest === undefined ||
    host === undefined ||
    (withVm && vm === undefined)
  ) {
    return {
      ok: false,
      reason: `expected ${shape}, e.g. ${withVm ? "tcp:2222:vm0:22" : "tcp:2222:22"}`,
    };
  }
  const hostPort = port(host);
  const guestPort = port(guest);
  if (hostPort === null)
    return { ok: false, reason: `host port "${host}" is not a port number 1-65535` };
  if (guestPort === null)
    return { ok: false, reason: `guest port "${guest}" is not a port number 1-65535` };
  if (addr !== undefined && addr !== "" && parseIpv4(addr) === null) {
    return { ok: false, reason: `host address "${addr}" is not an IPv4 address` };
  }
  if (withVm && !isName(vm)) {
    return { ok: false, reason: `"${vm}" is not a VM name` };
  }
  return {
    ok: true,
    value: {
      proto,
      hostAddr: addr ? addr : null,
      hostPort,
      vm: withVm ? (vm ?? null) : null,
      guestPort,
    },
  };
}
