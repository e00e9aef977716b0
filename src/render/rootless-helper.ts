// The host-side helper of a rootless lab (pure): pasta (preferred) or slirp4netns attached to the lab's
// namespace holder, for NAT egress and the lab's forwards published on the user's host; its argv.
import { join } from "node:path/posix";
import { formatIpv4, overlaps, parseCidr, type Subnet } from "../model/ipv4.js";
import type { Lab, Proto } from "../model/lab.js";

export type HelperTool = "pasta" | "slirp4netns";

/** The helper's interface inside the lab's namespace (the lab's way out; NAT leaves by it). */
export const HELPER_IFNAME = "qnext0";

/** A port the helper binds on the user's host and delivers into the lab's namespace (same number). */
export interface PublishedPort {
  proto: Proto;
  hostAddr: string;
  hostPort: number;
  /** Network and forward as written, for messages. */
  why: string;
}

export interface HelperPlan {
  tool: HelperTool;
  role: HelperTool;
  ifname: string;
  /** The helper's link: its network, the namespace side's address, prefix and gateway. */
  network: string;
  address: string;
  prefix: number;
  gateway: string;
  /** Where DNS queries from inside go (the helper answers them with the host's resolvers). */
  dns: string;
  ports: PublishedPort[];
  pidfile: string;
  /** The whole argument that marks the process as this lab's helper. */
  match: string;
  log: string;
  /** slirp4netns's API socket (forwards are added through it), else null. */
  apiSocket: string | null;
}

/** Every port the lab publishes on the host: bridge forwards and `user` network forwards. */
export function publishedPorts(lab: Lab): PublishedPort[] {
  return lab.networks.flatMap((n) =>
    n.type === "bridge" || n.type === "user"
      ? n.forwards.map((f) => ({
          proto: f.proto,
          hostAddr: f.hostAddr,
          hostPort: f.hostPort,
          why: `${n.name}: ${f.spec}`,
        }))
      : [],
  );
}

/** Why the lab needs a helper (NAT, forwards, QEMU's user networking reaching out), or null. */
export function helperReason(lab: Lab): string | null {
  const why: string[] = [];
  if (lab.networks.some((n) => n.type === "bridge" && n.nat)) why.push("NAT");
  if (publishedPorts(lab).length > 0) why.push("forwards");
  if (lab.networks.some((n) => n.type === "user")) why.push("user networking");
  return why.length ? why.join(", ") : null;
}

/** The candidates for the helper's link: the first that overlaps none of the lab's bridge subnets. */
const CANDIDATES = ["10.0.2.0/24", "10.0.3.0/24", "172.30.255.0/24", "192.168.255.0/24"];

export function helperSubnet(lab: Lab): Subnet | null {
  const used = lab.networks.flatMap((n) => {
    if (n.type !== "bridge") return [];
    const c = parseCidr(n.subnet);
    return c.ok ? [c.subnet] : [];
  });
  for (const cand of CANDIDATES) {
    const c = parseCidr(cand);
    if (c.ok && !used.some((u) => overlaps(u, c.subnet))) return c.subnet;
  }
  return null;
}

/** Reasons the helper cannot carry this lab (empty when it can). */
export function helperProblems(lab: Lab, tool: HelperTool): string[] {
  const out: string[] = [];
  const seen = new Map<string, string>();
  for (const p of publishedPorts(lab)) {
    const key = `${p.proto}/${p.hostPort}`;
    const first = seen.get(key);
    // The helper delivers a host port to the same port inside: two addresses cannot share it.
    if (first)
      out.push(
        `forwards ${first} and ${p.why} both publish ${p.proto} port ${p.hostPort}: a rootless lab delivers each host port to the same port inside, so each may be used once`,
      );
    else seen.set(key, p.why);
  }
  if (tool === "slirp4netns") {
    for (const n of lab.networks)
      if (n.type === "user" && n.forwards.length > 0)
        out.push(
          `network ${n.name}: forwards of a \`user\` network need pasta in a rootless lab (slirp4netns cannot reach QEMU's listener on the lab's loopback): install passt`,
        );
  }
  if (!helperSubnet(lab))
    out.push(
      `the lab's subnets leave no room for the helper's link (tried ${CANDIDATES.join(", ")})`,
    );
  return out;
}

/** The helper of a lab with `tool`, or null when the lab needs none (or cannot have one: see problems). */
export function planHelper(lab: Lab, tool: HelperTool, stateDir: string): HelperPlan | null {
  if (helperReason(lab) === null) return null;
  const net = helperSubnet(lab);
  if (!net) return null;
  const at = (n: number) => formatIpv4((net.base + n) >>> 0);
  const pidfile = join(stateDir, `${tool}.pid`);
  const apiSocket = tool === "slirp4netns" ? join(stateDir, "slirp4netns.sock") : null;
  return {
    tool,
    role: tool,
    ifname: HELPER_IFNAME,
    // slirp4netns's own layout (gateway .2, DNS .3, the namespace .100); pasta is told the same.
    network: at(0),
    address: at(100),
    prefix: net.prefix,
    gateway: at(2),
    dns: at(3),
    ports: publishedPorts(lab),
    pidfile,
    match: tool === "pasta" ? pidfile : `--api-socket=${apiSocket}`,
    log: join(stateDir, `${tool}.log`),
    apiSocket,
  };
}

/** `-t 127.0.0.1/8022` (an address of 0.0.0.0 binds every address: the port alone). */
function pastaSpec(p: PublishedPort): string {
  return p.hostAddr === "0.0.0.0" ? `${p.hostPort}` : `${p.hostAddr}/${p.hostPort}`;
}

/** pasta attached to the holder's namespaces (it daemonizes once the namespace side is configured). */
export function pastaArgv(plan: HelperPlan, holderPid: number, opts: { asRoot?: boolean } = {}) {
  const tcp = plan.ports.filter((p) => p.proto === "tcp").map(pastaSpec);
  const udp = plan.ports.filter((p) => p.proto === "udp").map(pastaSpec);
  return [
    "pasta",
    "--config-net",
    "--ipv4-only",
    ...["--ns-ifname", plan.ifname],
    ...["--address", plan.address, "--netmask", String(plan.prefix), "--gateway", plan.gateway],
    // The gateway is an address like any other: it must not lead to the user's own loopback.
    "--no-map-gw",
    ...["--dns-forward", plan.dns],
    ...(tcp.length ? tcp.flatMap((s) => ["--tcp-ports", s]) : ["--tcp-ports", "none"]),
    ...(udp.length ? udp.flatMap((s) => ["--udp-ports", s]) : ["--udp-ports", "none"]),
    // Nothing inside reaches ports of the host's namespace but through the published ones.
    ...["--tcp-ns", "none", "--udp-ns", "none"],
    // pasta started by root drops to nobody, who could not enter root's namespaces.
    ...(opts.asRoot ? ["--runas", "0"] : []),
    ...["--pid", plan.pidfile, "--log-file", plan.log, "--quiet"],
    String(holderPid),
  ];
}

/** slirp4netns attached to the holder's namespaces; `--ready-fd=3` says when the link is configured. */
export function slirpArgv(plan: HelperPlan, holderPid: number): string[] {
  return [
    "slirp4netns",
    "--configure",
    "--mtu=65520",
    // The lab reaches the internet, not the user's own loopback services.
    "--disable-host-loopback",
    // slirp4netns takes the network and gives the namespace its .100 itself.
    `--cidr=${plan.network}/${plan.prefix}`,
    `--api-socket=${plan.apiSocket}`,
    `--userns-path=/proc/${holderPid}/ns/user`,
    "--ready-fd=3",
    String(holderPid),
    plan.ifname,
  ];
}

/** The slirp4netns API requests that publish the lab's ports (delivered to the namespace's address). */
export function slirpForwardRequests(plan: HelperPlan): object[] {
  return plan.ports.map((p) => ({
    execute: "add_hostfwd",
    arguments: {
      proto: p.proto,
      host_addr: p.hostAddr,
      host_port: p.hostPort,
      guest_addr: plan.address,
      guest_port: p.hostPort,
    },
  }));
}

/** The lab's /etc/resolv.conf (bound over the host's inside its mount namespace). */
export function helperResolvConf(plan: HelperPlan | null): string {
  return plan
    ? `# AUTO-GENERATED by qnet: inside this rootless lab, DNS goes to ${plan.tool}, which asks the host's resolvers.\nnameserver ${plan.dns}\n`
    : "# AUTO-GENERATED by qnet: this rootless lab has no way out, so no resolver.\n";
}

/** What of a helper plan must match for a running helper to be kept (its argv depends on all of it). */
export function helperKey(plan: HelperPlan | null): string {
  return plan ? JSON.stringify([plan.tool, plan.address, plan.prefix, plan.ports]) : "none";
}
