// Renders a lab's nftables table (NAT masquerade and port-forward DNAT): pure, one atomic `nft -f -` input.

import { parseIpv4 } from "../model/ipv4.js";
import type { BridgeNetwork, Forward, Lab } from "../model/lab.js";
import { checkedIfname, nftTableOf } from "../model/names.js";
import { allVms } from "../resolve/part.js";

/** What the renderer needs to know about the host (read by src/host, never here). */
export interface NatFacts {
  /** The interface of the default route in the lab's namespace, or null if there is none. */
  defaultUplink: string | null;
  /**
   * Rootless labs: the interface where the host-side helper (pasta, slirp4netns) delivers connections
   * to published ports that it does not splice to the namespace's loopback.
   */
  publishedVia?: string | null;
}

/** The lab's table: `qnet-<lab>` in family ip. */
export const nftTable = nftTableOf;

/** An interface name as an nft string literal (validated: no quote, space or newline can get in). */
export function nftIf(name: string): string {
  return `"${checkedIfname(name, "interface name")}"`;
}

function ipv4(s: string, what: string): string {
  if (parseIpv4(s) === null) throw new Error(`internal: ${what} is not IPv4: ${JSON.stringify(s)}`);
  return s;
}

function subnet(s: string): string {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(s);
  if (!m || parseIpv4(m[1]) === null || Number(m[2]) > 32)
    throw new Error(`internal: bad subnet ${s}`);
  return s;
}

export function isLoopback(addr: string): boolean {
  return addr.startsWith("127.");
}

/** Bridge networks of the lab (the only kind with NAT and DNAT forwards). */
export function bridgeNetworks(lab: Lab): BridgeNetwork[] {
  return lab.networks.filter((n): n is BridgeNetwork => n.type === "bridge");
}

/** The address of a forward's target VM on `net`. */
export function forwardTarget(lab: Lab, net: BridgeNetwork, f: Forward): string {
  const vm = allVms(lab).find((v) => v.name === f.vm);
  const nic = vm?.nics.find((n) => n.network === net.name && n.ip !== null);
  if (!nic?.ip)
    throw new Error(`internal: forward ${f.spec}: VM ${f.vm} has no address on ${net.name}`);
  return ipv4(nic.ip, "forward target");
}

/** Host-level switches the lab's NAT and forwards need. */
export interface NatNeeds {
  /** Packets are routed between interfaces: net.ipv4.ip_forward=1. */
  ipForward: boolean;
  /** Bridges whose forwards bind a loopback address: route_localnet=1 on them (DNAT from 127.0.0.1). */
  routeLocalnet: string[];
}

export function natNeeds(lab: Lab, publishedVia: string | null = null): NatNeeds {
  let ipForward = false;
  const routeLocalnet: string[] = [];
  for (const net of bridgeNetworks(lab)) {
    if (net.nat) ipForward = true;
    if (net.forwards.some((f) => !isLoopback(f.hostAddr))) ipForward = true;
    // Published ports that arrive on the helper's interface are routed on to the bridge.
    if (publishedVia && net.forwards.length > 0) ipForward = true;
    if (net.forwards.some((f) => isLoopback(f.hostAddr))) routeLocalnet.push(net.bridge);
  }
  return { ipForward, routeLocalnet };
}

/**
 * The whole table as one `nft -f -` transaction, or null when the lab needs no NAT and no forwards.
 * `table` + `delete table` + the definition replace any previous version atomically (a plain
 * `flush table` would keep chains a newer lab no longer has).
 */
export function renderNftRuleset(lab: Lab, facts: NatFacts): string | null {
  const { family, table } = nftTable(lab.name);
  const pre: string[] = [];
  const out: string[] = [];
  const post: string[] = [];

  for (const net of bridgeNetworks(lab)) {
    const br = nftIf(net.bridge);
    if (net.nat) {
      const uplink = net.uplink ?? facts.defaultUplink;
      post.push(
        `# ${net.name}: NAT, the subnet leaves ${uplink ? `by ${uplink}` : "by any route"}`,
      );
      post.push(
        uplink
          ? `ip saddr ${subnet(net.subnet)} oifname ${nftIf(uplink)} masquerade`
          : `ip saddr ${subnet(net.subnet)} ip daddr != ${subnet(net.subnet)} oifname != ${br} masquerade`,
      );
    }
    for (const f of net.forwards) {
      const target = `${forwardTarget(lab, net, f)}:${f.guestPort}`;
      const host = ipv4(f.hostAddr, "forward address");
      const match =
        host === "0.0.0.0"
          ? `fib daddr type local ${f.proto} dport ${f.hostPort}`
          : `ip daddr ${host} ${f.proto} dport ${f.hostPort}`;
      const rule = `${match} dnat to ${target}`;
      const why = `# ${net.name}: ${f.spec}`;
      // Loopback addresses never arrive from outside: only the host's own connections (output).
      if (!isLoopback(host)) pre.push(why, rule);
      out.push(why, rule);
      if (facts.publishedVia) {
        // Rootless: the helper publishes the port on the user's host and delivers it here.
        pre.push(
          `# ${net.name}: ${f.spec}, published on the host by the lab's helper`,
          `iifname ${nftIf(facts.publishedVia)} ${f.proto} dport ${f.hostPort} dnat to ${target}`,
        );
      }
    }
    if (net.forwards.length > 0) {
      post.push(
        `# ${net.name}: forwarded connections from the host's loopback leave with the bridge's address`,
        `ip saddr 127.0.0.0/8 oifname ${br} ct status dnat masquerade`,
      );
      if (!net.nat && (facts.publishedVia || net.forwards.some((f) => !isLoopback(f.hostAddr)))) {
        post.push(
          `# ${net.name}: no NAT, so VMs have no route back to other hosts: forwarded connections come from the bridge`,
          `oifname ${br} ct status dnat masquerade`,
        );
      }
    }
  }
  if (pre.length + out.length + post.length === 0) return null;

  const chain = (name: string, hook: string, prio: string, rules: string[]): string[] =>
    rules.length === 0
      ? []
      : [
          `  chain ${name} {`,
          `    type nat hook ${hook} priority ${prio}; policy accept;`,
          ...rules.map((r) => `    ${r}`),
          "  }",
        ];
  return [
    `# AUTO-GENERATED by qnet for lab "${lab.name}": NAT and port forwards. Applied atomically`,
    "# with `nft -f -`; `qnet down` deletes the table. Rules outside this table are never touched.",
    `table ${family} ${table}`,
    `delete table ${family} ${table}`,
    `table ${family} ${table} {`,
    ...chain("prerouting", "prerouting", "dstnat", pre),
    ...chain("output", "output", "-100", out),
    ...chain("postrouting", "postrouting", "srcnat", post),
    "}",
    "",
  ].join("\n");
}
