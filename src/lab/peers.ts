// `qnet status` of a host's part: which peers' VTEPs answer. An ICMP echo to the peer's underlay address,
// and one UDP datagram to its VXLAN port that no VTEP accepts (8 zero bytes: no VNI flag, dropped in
// silence by a VXLAN socket); a host without one answers "port unreachable".
import { ProcessRunner, type Runner } from "../host/runner.js";
import { type LabRecord, recordNetns } from "../host/state.js";
import { VXLAN_PORT } from "../model/hosts.js";
import { hostAddress } from "../resolve/part.js";

export type VtepState = "answers" | "no-vtep" | "no-answer";

export interface PeerStatus {
  host: string;
  address: string;
  /** The spanned networks this host shares with it. */
  networks: string[];
  /** The peer replied to an ICMP echo on the underlay. */
  underlay: boolean;
  vtep: VtepState;
  detail: string;
}

/** Sends the probe from a connected UDP socket and reports whether an ICMP error refused it. */
const UDP_PROBE = `
const s = require("dgram").createSocket("udp4");
const [host, port] = process.argv.slice(1);
const done = (r) => { process.stdout.write(r); try { s.close(); } catch {} process.exit(0); };
s.on("error", (e) => done(e.code === "ECONNREFUSED" ? "refused" : "error " + e.code));
s.connect(Number(port), host, (e) => {
  if (e) return done("error " + e.code);
  const probe = () => s.send(Buffer.alloc(8), (err) => err && done(err.code === "ECONNREFUSED" ? "refused" : "error " + err.code));
  probe();
  setTimeout(probe, 250);
  setTimeout(() => done("silent"), 800);
});
`;

async function probePeer(
  runner: Runner,
  address: string,
): Promise<Omit<PeerStatus, "host" | "networks">> {
  const [ping, udp] = await Promise.all([
    runner.run(["ping", "-c1", "-W1", address], { allowFail: true, timeoutMs: 5_000 }),
    runner.run([process.execPath, "-e", UDP_PROBE, address, String(VXLAN_PORT)], {
      allowFail: true,
      timeoutMs: 5_000,
    }),
  ]);
  const underlay = ping.exitCode === 0;
  const got = udp.stdout.trim();
  if (got === "refused")
    return {
      address,
      underlay,
      vtep: "no-vtep",
      detail: `no VTEP: UDP port ${VXLAN_PORT} is unreachable there (its part is not up)`,
    };
  if (underlay && got === "silent")
    return { address, underlay, vtep: "answers", detail: `VTEP answers on UDP ${VXLAN_PORT}` };
  return {
    address,
    underlay,
    vtep: "no-answer",
    detail: underlay
      ? `the host answers, its VTEP could not be probed (${got || udp.stderr.trim() || "no result"})`
      : "no answer on the underlay (host down, or unreachable from here)",
  };
}

/** The peers of a part that is up, probed in parallel from its namespace; null for other labs. */
export async function peerStatus(rec: LabRecord): Promise<PeerStatus[] | null> {
  const lab = rec.lab;
  const me = lab.part?.host;
  if (!me) return null;
  const shared = new Map<string, string[]>();
  for (const n of lab.networks)
    if (n.type === "bridge" && n.span)
      for (const h of n.span.hosts) if (h !== me) shared.set(h, [...(shared.get(h) ?? []), n.name]);
  const runner = new ProcessRunner(recordNetns(rec));
  const order = (lab.hosts ?? []).map((h) => h.name).filter((h) => shared.has(h));
  return Promise.all(
    order.map(async (host) => ({
      host,
      networks: shared.get(host)!,
      ...(await probePeer(runner, hostAddress(lab, host))),
    })),
  );
}

export function renderPeers(peers: PeerStatus[]): string {
  if (peers.length === 0) return "peers: none (no network of this part spans hosts)\n";
  const rows = peers.map((p) => [p.host, p.address, p.networks.join(","), p.vtep, p.detail]);
  const head = ["PEER", "ADDRESS", "NETWORKS", "VTEP", "DETAIL"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join("  ");
  return `\npeers (VXLAN over UDP ${VXLAN_PORT}):\n${[head, ...rows].map(line).join("\n")}\n`;
}
