// Parses `bridge -json fdb show`: the forwarding entries, VXLAN devices' remote VTEPs among them.
import { parseJsonArray } from "./ip-json.js";
import type { FdbEntry } from "./types.js";

export function parseFdbJson(text: string): FdbEntry[] {
  return parseJsonArray(text, "bridge -json fdb show").flatMap((e): FdbEntry[] => {
    const mac = typeof e.mac === "string" ? e.mac.toLowerCase() : null;
    const dev = typeof e.ifname === "string" ? e.ifname : null;
    if (!mac || !dev) return [];
    return [
      {
        mac,
        dev,
        dst: typeof e.dst === "string" ? e.dst : null,
        flags: Array.isArray(e.flags)
          ? e.flags.filter((f): f is string => typeof f === "string")
          : [],
        state: typeof e.state === "string" && e.state !== "" ? e.state : null,
      },
    ];
  });
}
