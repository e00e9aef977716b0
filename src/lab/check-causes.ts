// `qnet check`: the most likely cause of each failed pair, from the lab's drift, the live state and doctor (pure).
import type { CheckResult } from "../doctor/types.js";
import { describeImpairment } from "../model/impair.js";
import type { Lab } from "../model/lab.js";
import type { PairResult } from "./check-pairs.js";
import type { LiveLab } from "./live.js";
import type { StatusObject } from "./status.js";

export interface CauseFacts {
  lab: Lab;
  live: LiveLab;
  /** `qnet status` objects (links, dnsmasq, nft table, VMs). */
  status: StatusObject[];
  /** doctor's findings (every status; only warn/fail ones are used). */
  doctor: CheckResult[];
}

/** A ping that failed inside its own sender (a route or rule there), not for lack of a reply. */
export function isLocalRefusal(detail: string): boolean {
  return /sendto|Network is unreachable|Operation not permitted|Permission denied/i.test(detail);
}

const bad = (o: StatusObject) => o.state !== "present";

function statusCause(o: StatusObject, what: string): string {
  // The status detail may repeat the owner ("… (vm1 nic 0)"): the cause names it already.
  const detail = o.detail.replace(/\s*\([^()]*\bnic \d+\b[^()]*\)$/, "");
  return `${what} is ${o.state} (${detail}); \`qnet status\` shows it, \`qnet up\` repairs it`;
}

/** Host objects the pair's network needs: its bridge, the host's address on it, the taps of its ends. */
function driftCause(r: PairResult, f: CauseFacts): string | null {
  const net = f.lab.networks.find((n) => n.name === r.network);
  if (net && net.type !== "user") {
    const br = f.status.find((o) => o.kind === "bridge" && o.name === net.bridge);
    if (br && bad(br)) return statusCause(br, `bridge ${net.bridge} of network ${net.name}`);
  }
  for (const end of r.ends) {
    const vm = f.lab.vms.find((v) => v.name === end.vm);
    for (const nic of vm?.nics.filter((n) => n.network === end.network) ?? []) {
      if (!nic.tap) continue;
      const tap = f.status.find((o) => o.kind === "tap" && o.name === nic.tap);
      if (tap && bad(tap))
        return statusCause(tap, `tap ${nic.tap} of ${end.vm}'s NIC ${nic.index} on ${end.network}`);
    }
  }
  const usesHostAddress = r.kind === "vm-gateway" || r.kind === "host-vm" || r.kind === "forward";
  if (net?.type === "bridge" && usesHostAddress) {
    const a = f.status.find((o) => o.kind === "address" && o.name.endsWith(` on ${net.bridge}`));
    if (a && bad(a)) return statusCause(a, `the host's address ${a.name}`);
  }
  return null;
}

/** An end VM that is not running, whose agent is silent, or that lacks its planned address. */
function vmCause(r: PairResult, f: CauseFacts): string | null {
  const names = [...new Set([r.from, ...r.ends.map((e) => e.vm)])].filter((n) => n !== "host");
  for (const name of names) {
    const v = f.live.vms.find((x) => x.name === name);
    if (v && v.state !== "running") return `VM ${name} is ${v.state}: ${v.detail}`;
  }
  if (r.from !== "host") {
    const v = f.live.vms.find((x) => x.name === r.from);
    if (v?.nics === null && v.agentError)
      return `the guest agent of ${r.from} did not answer (${v.agentError}), so nothing could be run in it`;
  }
  for (const end of r.ends) {
    const vm = f.lab.vms.find((x) => x.name === end.vm);
    const v = f.live.vms.find((x) => x.name === end.vm);
    for (const nic of vm?.nics.filter((n) => n.network === end.network) ?? []) {
      const got = v?.nics?.find((n) => n.nic === nic.index);
      if (!got || !nic.ip || nic.networkType === "bridged") continue;
      if (!got.ipv4.some((a) => a.split("/")[0] === nic.ip)) {
        const where = got.ifname ? `its interface ${got.ifname}` : "no interface with its MAC";
        return `${end.vm} does not hold its address ${nic.ip} on ${end.network} (${where} holds ${got.ipv4.join(", ") || "no IPv4 address"})`;
      }
    }
  }
  return null;
}

/** A NIC of the pair whose link drops frames on purpose (an impairment with loss in force). */
function impairCause(r: PairResult, f: CauseFacts): string | null {
  const names = [...new Set([r.from, ...r.ends.map((e) => e.vm)])].filter((n) => n !== "host");
  for (const name of names) {
    const vm = f.lab.vms.find((v) => v.name === name);
    for (const nic of vm?.nics.filter((n) => n.network === r.network) ?? []) {
      const loss = nic.impair?.lossPct ?? 0;
      if (loss > 0)
        return `${name} nic ${nic.index} is impaired (${describeImpairment(nic.impair)}, each direction): ${loss >= 100 ? "every frame is dropped on purpose" : `${loss}% of frames are dropped on purpose`}; \`qnet impair ${f.lab.name} ${name}:${nic.index} --clear\` removes it`;
    }
  }
  return null;
}

function doctorFinding(f: CauseFacts, id: string): CheckResult | undefined {
  return f.doctor.find((c) => c.id === id && (c.status === "fail" || c.status === "warn"));
}

function doctorCause(c: CheckResult): string {
  return `${c.title}: ${c.detail}${c.fix ? ` Fix: ${c.fix}` : ""}`;
}

function hostPathCause(r: PairResult, f: CauseFacts): string | null {
  const nft = f.status.find((o) => o.kind === "nft-table");
  if ((r.kind === "nat" || (r.kind === "forward" && r.forward?.networkType === "bridge")) && nft) {
    if (bad(nft)) return statusCause(nft, `the lab's nftables table ${nft.name}`);
  }
  // Routed traffic (and bridged, where br_netfilter filters it) needs qnet's accept rules where a
  // FORWARD chain drops: a chain whose rules are missing is drift that `qnet up` repairs.
  const fw = f.status.find((o) => o.kind === "firewall" && bad(o));
  if (fw && (r.kind === "nat" || r.kind === "forward" || r.kind === "vm-vm"))
    return statusCause(fw, `qnet's ${fw.name}`);
  if (r.kind === "nat") {
    for (const id of ["forward-policy", "ip-forward"]) {
      const c = doctorFinding(f, id);
      if (c) return doctorCause(c);
    }
  }
  if (r.kind === "vm-vm") {
    const c = doctorFinding(f, "bridge-nf-call");
    if (c?.status === "fail") return doctorCause(c);
  }
  return null;
}

/** The failed pair whose local refusal in `r.to` explains why `r` gets no reply. */
function replyCause(r: PairResult, all: PairResult[]): string | null {
  if (!r.source || (r.kind !== "vm-vm" && r.kind !== "host-vm")) return null;
  const back = all.find(
    (x) =>
      x.status === "fail" && x.from === r.to && x.address === r.source && isLocalRefusal(x.detail),
  );
  return back
    ? `${r.to} cannot send its replies to ${r.source}: the same rule makes ${back.from} → ${back.to} fail (${back.detail})`
    : null;
}

function fallback(r: PairResult): string {
  if (r.kind === "nat")
    return `no reply from ${r.address}; the lab's NAT looks in place (qnet status and doctor found nothing), so check that ${r.address} is reachable from the host's namespace itself`;
  if (r.kind === "forward")
    return `tried a TCP connection to ${r.address}:${r.port}; qnet status and doctor found nothing that explains it`;
  const where = r.from === "host" ? "the lab's namespace" : r.from;
  return `tried \`ping -c1\` of ${r.address} from ${where}; qnet status and doctor found nothing on the host that explains it, so look inside the guests (routes, firewall: \`qnet exec LAB VM -- ip route\`)`;
}

/** Give every failed pair its most likely cause (results are returned in the same order). */
export function explainFailures(results: PairResult[], facts: CauseFacts): PairResult[] {
  return results.map((r) => {
    if (r.status !== "fail") return r;
    const own = isLocalRefusal(r.detail)
      ? `${r.from === "host" ? "the lab's namespace" : r.from} refuses to send to ${r.address} itself (${r.detail}): a route or firewall rule there`
      : null;
    const cause =
      vmCause(r, facts) ??
      driftCause(r, facts) ??
      impairCause(r, facts) ??
      hostPathCause(r, facts) ??
      own ??
      replyCause(r, results) ??
      fallback(r);
    return { ...r, cause };
  });
}
