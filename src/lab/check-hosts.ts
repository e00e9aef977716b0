// `qnet check` of a multi-host lab: each part's own pairs, plus the pairs that cross hosts over VXLAN
// (VM to VM by address and by name, VM to a gateway on another host, the home host to VMs elsewhere) and
// full-size packets with DF set, so an MTU the overlay cannot carry is a failure, not a silent black hole.
// Pairs from a host's VMs need that host's part: this machine's, and any given with --part.
import { EXIT, UserError } from "../errors.js";
import { ProcessRunner } from "../host/runner.js";
import { type LabRecord, readLabRecord, recordNetns } from "../host/state.js";
import type { BridgeNetwork, Lab, Vm } from "../model/lab.js";
import { allVms } from "../resolve/part.js";
import { execInVm } from "./access.js";
import { checkLab } from "./check.js";
import { type PairResult, parsePingLatency, pingFailure } from "./check-pairs.js";
import { type CheckReport, summarize } from "./check-render.js";

/** IPv4 (20) and ICMP (8) headers: a ping of MTU - 28 bytes of data fills the MTU exactly. */
const ICMP_IPV4 = 28;

interface Part {
  dir: string;
  rec: LabRecord;
  host: string;
  lab: Lab;
}

type Outcome = Pick<PairResult, "status" | "latencyMs" | "detail">;
const fail = (detail: string): Outcome => ({ status: "fail", latencyMs: null, detail });

function readPart(dir: string): Part {
  const rec = readLabRecord(dir);
  if (!rec) throw new UserError(`no lab record in ${dir}`, "is that part up? see `qnet status`");
  const host = rec.lab.part?.host;
  if (!host)
    throw new UserError(
      `${dir} holds lab ${rec.lab.name}, which is not a part of a multi-host lab`,
      undefined,
      EXIT.usage,
    );
  return { dir, rec, host, lab: rec.lab };
}

/** The MTU of the guest's interface with this MAC (`ip -o link`), or null when it cannot be read. */
async function guestMtu(p: Part, vm: string, mac: string): Promise<number | null> {
  try {
    const r = await execInVm(p.dir, p.lab, vm, ["ip", "-o", "link"], { timeoutMs: 10_000 });
    const line = r.stdout
      .toString()
      .split("\n")
      .find((l) => l.toLowerCase().includes(mac));
    const m = line ? / mtu (\d+)/.exec(line) : null;
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** A ping from inside a VM; with `size`, as large as given, with DF where the guest's ping can say so. */
async function vmPing(p: Part, vm: string, to: string, size?: number): Promise<Outcome> {
  const base = ["ping", "-c1", "-W2", ...(size ? ["-s", String(size)] : [])];
  const run = async (argv: string[]) => {
    const r = await execInVm(p.dir, p.lab, vm, [...argv, to], { timeoutMs: 15_000 });
    return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
  };
  try {
    // iputils says DF with -M do; busybox has no such option, and its kernel sets DF anyway on a
    // packet that fits the interface (path MTU discovery is on by default): exactly our full-size probe.
    let r = size ? await run([...base, "-M", "do"]) : await run(base);
    if (size && r.code !== 0 && /invalid option|unrecognized option|usage/i.test(r.err + r.out))
      r = await run(base);
    const ms = parsePingLatency(r.out);
    if (r.code === 0 && ms !== null) return { status: "pass", latencyMs: ms, detail: "reply" };
    return fail(pingFailure(r.out, r.err, 2));
  } catch (e) {
    return fail(`could not run ping in ${vm}: ${(e as Error).message.split("\n")[0]}`);
  }
}

async function hostPing(p: Part, to: string, size?: number): Promise<Outcome> {
  const argv = ["ping", "-c1", "-W2", ...(size ? ["-M", "do", "-s", String(size)] : []), to];
  const r = await new ProcessRunner(recordNetns(p.rec)).run(argv, {
    allowFail: true,
    timeoutMs: 10_000,
  });
  const ms = parsePingLatency(r.stdout);
  if (r.exitCode === 0 && ms !== null) return { status: "pass", latencyMs: ms, detail: "reply" };
  return fail(pingFailure(r.stdout, r.stderr, 2));
}

interface Probe {
  id: string;
  kind: PairResult["kind"];
  from: string;
  to: string;
  network: string;
  address: string;
  ends: PairResult["ends"];
  run: () => Promise<Outcome>;
  /** The guest agent this probe uses (one client at a time), or null for a host probe. */
  agent: string | null;
}

const nicOn = (vm: Vm, net: string) => vm.nics.find((n) => n.network === net && n.ip);

/** The probes that cross hosts, from the VMs and home namespaces of the parts at hand. */
function crossProbes(parts: Part[]): Probe[] {
  const probes: Probe[] = [];
  const byHost = new Map(parts.map((p) => [p.host, p]));
  const whole = parts[0]!.lab;
  const everyone = allVms(whole);
  const hostOf = new Map(everyone.map((v) => [v.name, v.host!]));
  // Each part lists the networks it is on; a network's home part has its gateway, the others do not.
  const nets = new Map<string, BridgeNetwork>();
  for (const p of parts)
    for (const n of p.lab.networks)
      if (n.type === "bridge" && n.span && (!nets.has(n.name) || n.home === p.host))
        nets.set(n.name, n);
  const spanned = [...nets.values()].sort((x, y) => (x.name < y.name ? -1 : 1));
  const servesDhcp = (name: string) => nets.get(name)?.dhcp === true;
  for (const net of spanned) {
    const mtu = net.span!.mtu;
    const members = everyone.filter((v) => nicOn(v, net.name));
    for (const a of members) {
      const pa = byHost.get(hostOf.get(a.name)!);
      if (!pa) continue; // that host's part was not given: its VMs cannot be asked from here
      const aNic = nicOn(a, net.name)!;
      for (const b of members) {
        if (hostOf.get(b.name) === pa.host) continue;
        const ip = nicOn(b, net.name)!.ip!;
        const ends = [
          { vm: a.name, network: net.name },
          { vm: b.name, network: net.name },
        ];
        const common = {
          kind: "vm-vm" as const,
          from: a.name,
          network: net.name,
          ends,
          agent: a.name,
        };
        probes.push({
          ...common,
          id: `${a.name}>${b.name}@${net.name}`,
          to: b.name,
          address: ip,
          run: () => vmPing(pa, a.name, ip),
        });
        // By name: the VM's resolver is the DHCP server of its network (when it has only that one).
        if (
          servesDhcp(net.name) &&
          a.nics.every((n) => n.network === net.name || !servesDhcp(n.network))
        )
          probes.push({
            ...common,
            id: `${a.name}>${b.name}@${net.name}:name`,
            to: `${b.name} (by name)`,
            address: b.name,
            run: () => vmPing(pa, a.name, b.name),
          });
        probes.push({
          ...common,
          id: `${a.name}>${b.name}@${net.name}:full-size`,
          to: `${b.name} (full-size, DF)`,
          address: ip,
          run: async () => {
            const have = await guestMtu(pa, a.name, aNic.mac);
            if (have === null)
              return fail(`could not read the MTU of ${a.name}'s interface on ${net.name}`);
            const r = await vmPing(pa, a.name, ip, have - ICMP_IPV4);
            if (have > mtu)
              return fail(
                `${a.name}'s interface on ${net.name} has MTU ${have}, but the overlay carries ${mtu}: frames above ${mtu} bytes vanish at the VXLAN device (${r.status === "pass" ? "this probe passed by chance" : r.detail}); give the guest MTU ${mtu} (DHCP option 26, cloud-init)`,
              );
            if (r.status === "pass")
              return {
                ...r,
                detail: `a ${have}-byte packet (the interface's MTU) with DF arrived`,
              };
            return fail(
              `a ${have}-byte packet with DF did not arrive (${r.detail}), while the overlay's MTU is ${mtu}: the underlay between the hosts carries less than ${mtu + 50} bytes (a link or tunnel with a smaller MTU?): set the hosts' \`mtu:\``,
            );
          },
        });
      }
      const gw = aNic.gateway;
      if (gw && net.home !== pa.host)
        probes.push({
          id: `${a.name}>gateway@${net.name}`,
          kind: "vm-gateway",
          from: a.name,
          to: "gateway",
          network: net.name,
          address: gw,
          ends: [{ vm: a.name, network: net.name }],
          agent: a.name,
          run: () => vmPing(pa, a.name, gw),
        });
    }
    const ph = net.gateway ? byHost.get(net.home!) : undefined; // the home part holds the gateway
    if (!ph) continue;
    for (const b of members) {
      if (hostOf.get(b.name) === ph.host) continue;
      const ip = nicOn(b, net.name)!.ip!;
      const common = {
        kind: "host-vm" as const,
        from: `host ${ph.host}`,
        network: net.name,
        address: ip,
        ends: [{ vm: b.name, network: net.name }],
        agent: null,
      };
      probes.push({
        ...common,
        id: `${ph.host}>${b.name}@${net.name}`,
        to: b.name,
        run: () => hostPing(ph, ip),
      });
      probes.push({
        ...common,
        id: `${ph.host}>${b.name}@${net.name}:full-size`,
        to: `${b.name} (full-size, DF)`,
        run: async () => {
          const r = await hostPing(ph, ip, mtu - ICMP_IPV4);
          return r.status === "pass"
            ? { ...r, detail: `a ${mtu}-byte packet (the overlay's MTU) with DF arrived` }
            : fail(`a ${mtu}-byte packet with DF did not arrive: ${r.detail}`);
        },
      });
    }
  }
  return probes;
}

/**
 * Check a multi-host lab from the parts at hand (state directories; the first is this machine's): each
 * part's own pairs (as `qnet check` of a single-host lab), then every pair across hosts.
 */
export async function checkHosts(
  dirs: string[],
  opts: { target?: string | null } = {},
): Promise<CheckReport> {
  const parts = dirs.map(readPart);
  const name = parts[0]!.lab.name;
  const seen = new Set<string>();
  for (const p of parts) {
    if (p.lab.name !== name)
      throw new UserError(`${p.dir} holds lab ${p.lab.name}, not ${name}`, undefined, EXIT.usage);
    if (seen.has(p.host))
      throw new UserError(`host ${p.host}'s part is given twice (${p.dir})`, undefined, EXIT.usage);
    seen.add(p.host);
  }
  // Each part's own pairs (one at a time: they share nothing, but the machine's two cores do).
  const local: PairResult[] = [];
  const doctor: CheckReport["doctor"] = [];
  for (const p of parts) {
    const r = await checkLab(p.dir, { target: opts.target ?? null });
    local.push(
      ...r.pairs.map((x) => ({
        ...x,
        id: `${p.host}:${x.id}`,
        from: x.from === "host" ? `host ${p.host}` : x.from,
      })),
    );
    doctor.push(...r.doctor);
  }
  // Across hosts: one queue per guest agent, all queues and host probes in parallel.
  const probes = crossProbes(parts);
  const outcomes = new Map<string, Outcome>();
  const queues = new Map<string, Probe[]>();
  for (const pr of probes) {
    const key = pr.agent ?? `host:${pr.id}`;
    queues.set(key, [...(queues.get(key) ?? []), pr]);
  }
  await Promise.all(
    [...queues.values()].map(async (q) => {
      for (const pr of q) outcomes.set(pr.id, await pr.run());
    }),
  );
  const cross: PairResult[] = probes.map((pr) => {
    const o = outcomes.get(pr.id)!;
    return {
      id: pr.id,
      kind: pr.kind,
      from: pr.from,
      to: pr.to,
      network: pr.network,
      address: pr.address,
      port: null,
      status: o.status,
      latencyMs: o.latencyMs,
      detail: o.detail,
      cause: null,
      source: null,
      forward: null,
      ends: pr.ends,
      blocked: null,
    };
  });
  const missing = (parts[0]!.lab.hosts ?? []).map((h) => h.name).filter((h) => !seen.has(h));
  const skipped: PairResult[] = missing.length
    ? [
        {
          id: `parts:${missing.join(",")}`,
          kind: "vm-vm",
          from: missing.join(", "),
          to: "other hosts",
          network: null,
          address: "",
          port: null,
          status: "skip",
          latencyMs: null,
          detail: `pairs from the VMs of ${missing.join(", ")} need their parts: run \`qnet check\` there, or pass their state roots with --part`,
          cause: null,
          source: null,
          forward: null,
          ends: [],
          blocked: null,
        },
      ]
    : [];
  const pairs = [...local, ...cross, ...skipped];
  const summary = summarize(pairs);
  return { lab: name, netns: null, ok: summary.fail === 0, summary, pairs, doctor };
}
