// Checks host ports the lab needs: forward ports, and DNS (53) and DHCP (67) on each bridge's gateway address.

import { collides, describeProcs, parseSs } from "../facts/ss.js";
import type { Listener } from "../facts/types.js";
import type { Lab } from "../model/lab.js";
import { probe } from "./run.js";
import type { CheckResult, DoctorContext } from "./types.js";

export async function listListeners(ctx: DoctorContext): Promise<Listener[] | null> {
  const t = await probe(ctx.runner, ["ss", "-Htlnp"]);
  const u = await probe(ctx.runner, ["ss", "-Hulnp"]);
  if (!t.ok || !u.ok) return null;
  return [...parseSs(t.stdout, "tcp"), ...parseSs(u.stdout, "udp")];
}

function fmt(l: Listener): string {
  const a = l.addr.includes(":") ? `[${l.addr}]` : l.addr;
  return `${l.proto} ${a}${l.iface ? `%${l.iface}` : ""}:${l.port} is held by ${describeProcs(l)}`;
}

function killHint(ls: Listener[]): string {
  const pids = [...new Set(ls.flatMap((l) => l.procs.map((p) => p.pid)))];
  return pids.length
    ? `stop ${pids.map((p) => `pid ${p}`).join(", ")} (e.g. kill ${pids.join(" ")})`
    : "stop the process holding it";
}

function checkForwards(lab: Lab, ls: Listener[], where: string): CheckResult {
  const base = { id: "ports.forwards", title: "forward host ports" };
  const hits: { text: string; user: boolean; ls: Listener[]; spec: string }[] = [];
  let count = 0;
  for (const n of lab.networks) {
    if (n.type === "bridged") continue;
    for (const f of n.forwards) {
      count++;
      const taken = ls.filter((l) => collides(l, f.proto, f.hostAddr, f.hostPort));
      if (taken.length) {
        hits.push({
          text: `${f.spec} on ${n.name}: ${taken.map(fmt).join("; ")}`,
          user: n.type === "user",
          ls: taken,
          spec: f.spec,
        });
      }
    }
  }
  if (count === 0) return { ...base, status: "skip", detail: "The lab forwards no host port." };
  if (hits.length === 0)
    return {
      ...base,
      status: "pass",
      detail: `All ${count} forwarded host port(s) are free${where}.`,
    };
  const userHit = hits.some((h) => h.user);
  return {
    ...base,
    status: userHit ? "fail" : "warn",
    detail: `Forward host ports already taken${where}: ${hits.map((h) => h.text).join("; ")}; ${userHit ? "QEMU cannot bind a user-network forward that is taken, so the VM will not start" : "the forward's DNAT will shadow that listener"}.`,
    fix: `${killHint(hits.flatMap((h) => h.ls))}, or change the host port of ${hits.map((h) => h.spec).join(", ")}`,
  };
}

function checkDnsDhcp(lab: Lab, ls: Listener[], where: string): CheckResult {
  const base = { id: "ports.dns-dhcp", title: "DNS/DHCP ports on bridges" };
  const hits: Listener[] = [];
  const texts: string[] = [];
  let count = 0;
  for (const n of lab.networks) {
    if (n.type !== "bridge" || !n.gateway || !(n.dhcp || n.dnsHost)) continue;
    count++;
    const wanted: ["tcp" | "udp", number][] = [
      ["udp", 53],
      ["tcp", 53],
    ];
    if (n.dhcp) wanted.push(["udp", 67]);
    for (const [proto, port] of wanted) {
      // DHCP is received on 0.0.0.0:67 bound to the bridge; DNS on the gateway address.
      const addr = port === 67 ? "0.0.0.0" : n.gateway;
      const taken = ls.filter(
        (l) =>
          collides(l, proto, addr, port, n.bridge) &&
          (port !== 67 || l.iface === null || l.iface === n.bridge),
      );
      for (const l of taken) {
        hits.push(l);
        texts.push(`${n.name} (${n.bridge}, ${n.gateway}): ${fmt(l)}`);
      }
    }
  }
  if (count === 0)
    return {
      ...base,
      status: "skip",
      detail: "No bridge network of the lab runs DHCP or DNS on the host.",
    };
  if (hits.length === 0)
    return {
      ...base,
      status: "pass",
      detail: `Ports 53 and 67 are free on the lab's bridge gateways${where}.`,
    };
  const dnsmasq = hits.some((l) => l.procs.some((p) => p.name === "dnsmasq"));
  return {
    ...base,
    status: "fail",
    detail: `${[...new Set(texts)].join("; ")}, so qnet's dnsmasq cannot serve that network${dnsmasq ? " (if the lab is already up, that dnsmasq may be qnet's own)" : ""}.`,
    fix: `${killHint(hits)}, or make it listen only on its own addresses (e.g. bind-interfaces / a specific listen address)`,
  };
}

export async function checkPorts(ctx: DoctorContext): Promise<CheckResult[]> {
  if (!ctx.lab) {
    return [
      {
        id: "ports",
        title: "host ports",
        status: "skip",
        detail: "No topology given, so no port to check.",
      },
    ];
  }
  const where = ctx.runner.netns ? ` in namespace ${ctx.runner.netns}` : "";
  const ls = await listListeners(ctx);
  if (!ls) {
    return [
      {
        id: "ports",
        title: "host ports",
        status: "skip",
        detail: `ss could not list listening sockets${where}.`,
        fix: "apt install iproute2",
      },
    ];
  }
  return [checkForwards(ctx.lab, ls, where), checkDnsDhcp(ctx.lab, ls, where)];
}
