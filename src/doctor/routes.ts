// Checks lab subnets against the routes of the host (or of the namespace): an overlap hijacks traffic.

import { formatSubnet, overlaps, parseCidr, parseIpv4, type Subnet } from "../model/ipv4.js";
import type { Lab } from "../model/lab.js";
import { probe } from "./run.js";
import type { CheckResult, DoctorContext } from "./types.js";

export interface Route {
  dst: string;
  dev: string | null;
  subnet: Subnet;
}

/** Parse `ip -json route`: every non-default IPv4 route with its subnet. */
export function parseRoutes(json: string): Route[] {
  const items = JSON.parse(json) as { dst?: string; dev?: string }[];
  const out: Route[] = [];
  for (const r of items) {
    if (!r.dst || r.dst === "default") continue;
    const [addr, len] = r.dst.includes("/") ? r.dst.split("/") : [r.dst, "32"];
    const base = parseIpv4(addr);
    const prefix = Number(len);
    if (base === null || !(prefix >= 0 && prefix <= 32)) continue;
    const size = 2 ** (32 - prefix);
    out.push({
      dst: r.dst,
      dev: r.dev ?? null,
      subnet: { base: base - (base % size), prefix, size },
    });
  }
  return out;
}

function labSubnets(
  lab: Lab,
): { net: string; subnet: Subnet; bridge: string | null; user: boolean }[] {
  return lab.networks.flatMap((n) => {
    if (n.type === "bridged") return [];
    const c = parseCidr(n.subnet);
    const s = c.ok ? c.subnet : null;
    return s
      ? [
          {
            net: n.name,
            subnet: s,
            bridge: n.type === "bridge" ? n.bridge : null,
            user: n.type === "user",
          },
        ]
      : [];
  });
}

export async function checkRoutes(ctx: DoctorContext): Promise<CheckResult[]> {
  const base = { id: "routes", title: "subnet overlap with routes" };
  if (!ctx.lab)
    return [{ ...base, status: "skip", detail: "No topology given, so no subnet to compare." }];
  const where = ctx.runner.netns ? ` in namespace ${ctx.runner.netns}` : "";
  const r = await probe(ctx.runner, ["ip", "-json", "-4", "route", "show"]);
  let routes: Route[];
  try {
    if (!r.ok) throw new Error(r.stderr);
    routes = parseRoutes(r.stdout);
  } catch {
    return [
      {
        ...base,
        status: "skip",
        detail: `ip -json route failed${where}, so overlaps are unchecked.`,
      },
    ];
  }
  const subnets = labSubnets(ctx.lab);
  if (subnets.length === 0)
    return [{ ...base, status: "skip", detail: "The lab has no subnet of its own." }];
  const bad: string[] = [];
  let userOnly = true;
  for (const s of subnets) {
    // The lab's own bridge route (when the lab is up) is not a conflict.
    for (const rt of routes.filter((x) => overlaps(x.subnet, s.subnet) && x.dev !== s.bridge)) {
      bad.push(
        `${s.net} ${formatSubnet(s.subnet)} overlaps ${rt.dst}${rt.dev ? ` dev ${rt.dev}` : ""}`,
      );
      if (!s.user) userOnly = false;
    }
  }
  if (bad.length === 0) {
    return [
      {
        ...base,
        status: "pass",
        detail: `No lab subnet overlaps a route${where} (${subnets.map((s) => formatSubnet(s.subnet)).join(", ")}).`,
      },
    ];
  }
  return [
    {
      ...base,
      status: userOnly ? "warn" : "fail",
      detail: `${bad.join("; ")}${where}, so ${userOnly ? "guests cannot reach those host-side addresses" : "traffic for those addresses goes the wrong way"}.`,
      fix: "change the network's `subnet:` in the topology to a free range (e.g. another 10.x.y.0/24)",
    },
  ];
}
