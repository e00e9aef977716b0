// `qnet check LAB`: prove a running lab's connectivity pair by pair (pings through the guest agents,
// pings and TCP connects from the lab's namespace), and name the most likely cause of each failure.
import { runDoctor } from "../doctor/index.js";
import { EXIT, UserError } from "../errors.js";
import { readLiveImpairments } from "../host/impair-live.js";
import { ProcessRunner, type Runner } from "../host/runner.js";
import { readLabRecord, recordNetns } from "../host/state.js";
import { withLiveImpairments } from "../model/impair-live.js";
import { parseIpv4 } from "../model/ipv4.js";
import type { Lab } from "../model/lab.js";
import { nftTable } from "../render/nftables.js";
import { execInVm } from "./access.js";
import { explainFailures } from "./check-causes.js";
import {
  listensOn,
  type Pair,
  type PairResult,
  parsePingLatency,
  pingFailure,
  planPairs,
} from "./check-pairs.js";
import { type CheckReport, summarize } from "./check-render.js";
import { type LiveLab, readLiveLab } from "./live.js";
import { fullStatus } from "./status.js";

export type { CheckReport } from "./check-render.js";

export interface CheckOptions {
  /** An address to ping from every VM on a NAT network (proves the way out). */
  target?: string | null;
  /** Seconds each ping waits for its reply (default 2). */
  pingWaitS?: number;
  /** Host pairs run at the same time (default 8). */
  parallel?: number;
}

type Outcome = Pick<PairResult, "status" | "latencyMs" | "detail">;

const fail = (detail: string): Outcome => ({ status: "fail", latencyMs: null, detail });

/** Run `fn` on every item with at most `limit` running at once, keeping the order of results. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * On a user network, ping up to twice: QEMU's user stack drops the first packet to a guest while it
 * resolves the guest's MAC, so only two misses in a row count. (The kernel queues such packets.)
 */
async function twice(retry: boolean, once: () => Promise<Outcome>): Promise<Outcome> {
  const first = await once();
  if (first.status === "pass" || !retry) return first;
  const second = await once();
  return second.status === "pass"
    ? { ...second, detail: `reply (second try; first: ${first.detail})` }
    : second;
}

const onUserNetwork = (lab: Lab, p: Pair) =>
  lab.networks.some((n) => n.name === p.network && n.type === "user");

async function pingFromVm(stateDir: string, lab: Lab, p: Pair, waitS: number): Promise<Outcome> {
  const argv = ["ping", "-c1", "-W", String(waitS), p.address];
  return twice(onUserNetwork(lab, p), async () => {
    try {
      const r = await execInVm(stateDir, lab, p.from, argv, { timeoutMs: (waitS + 10) * 1000 });
      const out = r.stdout.toString();
      const ms = parsePingLatency(out);
      if (r.exitCode === 0 && ms !== null)
        return { status: "pass", latencyMs: ms, detail: "reply" };
      return fail(pingFailure(out, r.stderr.toString(), waitS));
    } catch (e) {
      return fail(`could not run ping in ${p.from}: ${(e as Error).message.split("\n")[0]}`);
    }
  });
}

async function pingFromHost(runner: Runner, p: Pair, waitS: number): Promise<Outcome> {
  return twice(false, async () => {
    const r = await runner.run(["ping", "-c1", "-W", String(waitS), p.address], {
      allowFail: true,
      timeoutMs: (waitS + 5) * 1000,
    });
    const ms = parsePingLatency(r.stdout);
    if (r.exitCode === 0 && ms !== null) return { status: "pass", latencyMs: ms, detail: "reply" };
    return fail(pingFailure(r.stdout, r.stderr, waitS));
  });
}

/** A TCP connect from the lab's namespace: refused, timeout, or connected and then open/closed. */
const CONNECT_SCRIPT = `
const net = require("net");
const [host, port] = process.argv.slice(1);
const t0 = process.hrtime.bigint();
let connectMs = null;
const done = (result) => { process.stdout.write(JSON.stringify({ result, connectMs })); process.exit(0); };
const s = net.connect({ host, port: Number(port) });
s.setTimeout(3000, () => done(connectMs === null ? "timeout" : "open"));
s.on("connect", () => {
  connectMs = Number(process.hrtime.bigint() - t0) / 1e6;
  s.setTimeout(0);
  setTimeout(() => done("open"), 1500);
});
s.on("data", () => done("data"));
s.on("end", () => done("closed"));
s.on("error", (e) => done(connectMs !== null ? "closed" : e.code === "ECONNREFUSED" ? "refused" : "error " + e.code));
`;

interface Connect {
  result: string;
  connectMs: number | null;
}

async function tcpConnect(runner: Runner, address: string, port: number): Promise<Connect> {
  const r = await runner.run([process.execPath, "-e", CONNECT_SCRIPT, address, String(port)], {
    allowFail: true,
    timeoutMs: 10_000,
  });
  try {
    return JSON.parse(r.stdout) as Connect;
  } catch {
    return {
      result: `error (${r.stderr.trim().split("\n")[0] || `exit ${r.exitCode}`})`,
      connectMs: null,
    };
  }
}

/** Does anything listen on TCP `port` inside the VM? null when the guest cannot be asked. */
async function guestListens(
  stateDir: string,
  lab: Lab,
  vm: string,
  port: number,
): Promise<boolean | null> {
  try {
    const r = await execInVm(stateDir, lab, vm, ["cat", "/proc/net/tcp", "/proc/net/tcp6"], {
      timeoutMs: 10_000,
    });
    const text = r.stdout.toString();
    return text.trim() ? listensOn(text, port) : null;
  } catch {
    return null;
  }
}

async function probeForward(
  stateDir: string,
  lab: Lab,
  runner: Runner,
  p: Pair,
  live: LiveLab,
): Promise<Outcome> {
  const f = p.forward!;
  if (f.proto !== "tcp")
    return {
      status: "skip",
      latencyMs: null,
      detail: `${f.spec}: UDP forwards are not probed (there is no connection to prove)`,
    };
  const where = `${p.address}:${f.hostPort}`;
  const c = await tcpConnect(runner, p.address, f.hostPort);
  const vm = f.targetVm;
  const running = live.vms.find((v) => v.name === vm)?.state === "running";
  const listenerCheck = async () =>
    vm && running ? guestListens(stateDir, lab, vm, f.guestPort) : null;
  const user = f.networkType === "user";
  if (c.result === "open" || c.result === "data") {
    // QEMU's user stack accepts before the guest answers: only the guest can say it listens.
    const listens = user ? await listenerCheck() : true;
    if (listens === false)
      return {
        status: "warn",
        latencyMs: c.connectMs,
        detail: `no listener in the guest: QEMU accepted ${where}, but nothing listens on tcp port ${f.guestPort} in ${vm}`,
      };
    return { status: "pass", latencyMs: c.connectMs, detail: `connected to ${where}` };
  }
  if (c.result === "closed" && !user)
    return {
      status: "pass",
      latencyMs: c.connectMs,
      detail: `connected to ${where} (the guest closed it)`,
    };
  if (c.result === "closed" || (c.result === "refused" && !user)) {
    // QEMU's user stack accepts, then closes when the guest refuses; a DNAT forward gets the guest's refusal.
    const how =
      c.result === "closed"
        ? `QEMU accepted ${where} and closed it at once`
        : `the connection to ${where} was refused`;
    const listens = await listenerCheck();
    if (listens === false) {
      if (!user && !(await nftPresent(runner, lab)))
        return fail(`${how}, and the lab's nftables table is gone`);
      return {
        status: "warn",
        latencyMs: c.connectMs,
        detail: `no listener in the guest: ${how}; nothing listens on tcp port ${f.guestPort} in ${vm} (the forward itself is in place)`,
      };
    }
    if (listens === true)
      return fail(
        `${how}, although ${vm} listens on tcp port ${f.guestPort}: the forward does not reach it`,
      );
    return fail(`${how}; could not ask ${vm ?? "the VM"} whether it listens on ${f.guestPort}`);
  }
  if (c.result === "refused")
    return fail(`connection to ${where} refused: QEMU does not listen there (is ${vm} running?)`);
  if (c.result === "timeout") return fail(`no answer from ${where} within 3 s`);
  return fail(`connecting to ${where}: ${c.result}`);
}

async function nftPresent(runner: Runner, lab: Lab): Promise<boolean> {
  const t = nftTable(lab.name);
  const r = await runner.run(["nft", "list", "table", t.family, t.table], { allowFail: true });
  return r.exitCode === 0;
}

/** Probe every pair of the lab whose state directory is `stateDir`. */
export async function checkLab(stateDir: string, opts: CheckOptions = {}): Promise<CheckReport> {
  const rec = readLabRecord(stateDir);
  if (!rec) throw new UserError(`no lab record in ${stateDir}`, "is the lab up? see `qnet status`");
  if (opts.target && parseIpv4(opts.target) === null)
    throw new UserError(
      `--target ${JSON.stringify(opts.target)} is not an IPv4 address`,
      undefined,
      EXIT.usage,
    );
  if (rec.options?.noVms === true)
    throw new UserError(
      `lab ${rec.lab.name} was brought up with --no-vms: qnet cannot reach into VMs it did not start`,
      "bring it up with its VMs to check it",
    );
  // The impairments in force (live changes of `qnet impair` included) explain failures too.
  const lab = withLiveImpairments(rec.lab, readLiveImpairments(stateDir));
  const netns = recordNetns(rec);
  const runner = new ProcessRunner(netns);
  const waitS = opts.pingWaitS ?? 2;
  const live = await readLiveLab(stateDir, lab);
  const pairs = planPairs(lab, live, { target: opts.target ?? null });

  const run = async (p: Pair): Promise<Outcome> => {
    if (p.blocked) return fail(`not tried: ${p.blocked}`);
    if (p.from !== "host") {
      const v = live.vms.find((x) => x.name === p.from);
      if (v?.state !== "running") return fail(`not tried: ${p.from} is not running`);
      return pingFromVm(stateDir, lab, p, waitS);
    }
    if (p.kind === "forward") return probeForward(stateDir, lab, runner, p, live);
    return pingFromHost(runner, p, waitS);
  };

  // The guest agent takes one client at a time: one queue per VM, all queues and host probes in parallel.
  const outcomes = new Map<string, Outcome>();
  const byVm = new Map<string, Pair[]>();
  const hostPairs: Pair[] = [];
  for (const p of pairs) {
    if (p.from === "host") hostPairs.push(p);
    else byVm.set(p.from, [...(byVm.get(p.from) ?? []), p]);
  }
  await Promise.all([
    ...[...byVm.values()].map(async (list) => {
      for (const p of list) outcomes.set(p.id, await run(p));
    }),
    mapLimit(hostPairs, opts.parallel ?? 8, async (p) => {
      outcomes.set(p.id, await run(p));
    }),
  ]);
  // Key order for --json readers: what was probed and its result first, the details after.
  let results: PairResult[] = pairs.map((p) => {
    const o = outcomes.get(p.id)!;
    return {
      id: p.id,
      kind: p.kind,
      from: p.from,
      to: p.to,
      network: p.network,
      address: p.address,
      port: p.port,
      status: o.status,
      latencyMs: o.latencyMs,
      detail: o.detail,
      cause: null,
      source: p.source,
      forward: p.forward,
      ends: p.ends,
      blocked: p.blocked,
    };
  });

  let doctor: CheckReport["doctor"] = [];
  if (results.some((r) => r.status === "fail")) {
    const [status, report] = await Promise.all([fullStatus(stateDir), runDoctor({ lab, runner })]);
    results = explainFailures(results, {
      lab,
      live,
      status: status.objects,
      doctor: report.checks,
    });
    doctor = report.checks
      .filter((c) => c.status === "fail" || c.status === "warn")
      .map((c) => ({
        id: c.id,
        status: c.status,
        detail: c.detail,
        ...(c.fix ? { fix: c.fix } : {}),
      }));
  }
  const summary = summarize(results);
  return { lab: lab.name, netns, ok: summary.fail === 0, summary, pairs: results, doctor };
}
