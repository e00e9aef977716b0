// `qnet perf`: iperf3 between two VMs of a running lab, or a VM and the host (the lab's namespace):
// throughput and TCP retransmits. Servers in guests run through the guest agent, one-off and timed out.
import { spawn } from "node:child_process";
import { EXIT, UserError } from "../errors.js";
import { inNetns, ProcessRunner } from "../host/runner.js";
import { readLabRecord, recordNetns } from "../host/state.js";
import type { Lab, Nic, Vm } from "../model/lab.js";
import { execInVm } from "./access.js";
import { listensOn } from "./check-pairs.js";

export interface PerfOptions {
  seconds?: number;
  port?: number;
  progress?: (m: string) => void;
}

export interface PerfResult {
  lab: string;
  from: string;
  to: string;
  network: string;
  /** The address the client connected to. */
  address: string;
  seconds: number;
  /** Bits per second the sender sent and the receiver received (iperf3's sum_sent / sum_received). */
  sentBps: number;
  receivedBps: number;
  retransmits: number | null;
  /** The client ran at `to` and asked the server to send (-R): user networks reach the host only. */
  reverse: boolean;
}

interface Path {
  network: string;
  /** Where the iperf3 client runs and the address it connects to. */
  client: string;
  server: string;
  address: string;
  reverse: boolean;
}

const onNet = (vm: Vm, net: string): Nic | undefined => vm.nics.find((n) => n.network === net);

/** How to measure FROM → TO: a network they share, who serves, who connects. */
export function perfPath(lab: Lab, from: string, to: string): Path {
  const vmOf = (name: string) => {
    const vm = lab.vms.find((v) => v.name === name);
    if (!vm)
      throw new UserError(
        `lab ${lab.name} has no VM named "${name}"`,
        `endpoints: host, ${lab.vms.map((v) => v.name).join(", ")}`,
        EXIT.usage,
      );
    return vm;
  };
  if (from === to) throw new UserError("FROM and TO are the same", undefined, EXIT.usage);
  if (from === "host" || to === "host") {
    const vm = vmOf(from === "host" ? to : from);
    for (const nic of vm.nics) {
      const net = lab.networks.find((n) => n.name === nic.network)!;
      if (net.type === "bridge" && net.gateway && nic.ip) {
        return from === "host"
          ? { network: net.name, client: "host", server: vm.name, address: nic.ip, reverse: false }
          : {
              network: net.name,
              client: vm.name,
              server: "host",
              address: net.gateway,
              reverse: false,
            };
      }
      if (net.type === "user") {
        // QEMU's user stack reaches the host (its gateway address) but not the other way: the VM is
        // the client, and the host sends with -R when it is FROM.
        return {
          network: net.name,
          client: vm.name,
          server: "host",
          address: net.hostAddr,
          reverse: from === "host",
        };
      }
    }
    throw new UserError(
      `${vm.name} has no NIC where the host has an address (a bridge network with a gateway, or a user network)`,
      undefined,
      EXIT.usage,
    );
  }
  const a = vmOf(from);
  const b = vmOf(to);
  for (const nic of b.nics) {
    if (nic.networkType === "user") continue;
    if (onNet(a, nic.network) && nic.ip)
      return {
        network: nic.network,
        client: a.name,
        server: b.name,
        address: nic.ip,
        reverse: false,
      };
  }
  throw new UserError(
    `${from} and ${to} share no network where ${to} has a known address (user networks are one QEMU stack per VM)`,
    undefined,
    EXIT.usage,
  );
}

/** iperf3's JSON report: throughput sent and received, retransmits. */
export function parseIperf(
  json: string,
): Pick<PerfResult, "sentBps" | "receivedBps" | "retransmits"> {
  let r: {
    end?: {
      sum_sent?: { bits_per_second?: number; retransmits?: number };
      sum_received?: { bits_per_second?: number };
    };
    error?: string;
  };
  try {
    r = JSON.parse(json);
  } catch {
    throw new UserError(`iperf3 printed no JSON report: ${json.trim().slice(0, 300)}`);
  }
  if (r.error) throw new UserError(`iperf3: ${r.error}`);
  const sent = r.end?.sum_sent?.bits_per_second;
  const recv = r.end?.sum_received?.bits_per_second;
  if (typeof sent !== "number" || typeof recv !== "number")
    throw new UserError("iperf3's report has no sum_sent/sum_received");
  return { sentBps: sent, receivedBps: recv, retransmits: r.end?.sum_sent?.retransmits ?? null };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait (up to `ms`) until something listens on TCP `port` where the server runs. */
async function waitListening(
  ask: () => Promise<string>,
  port: number,
  ms: number,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (listensOn(await ask(), port)) return true;
    await sleep(300);
  }
  return false;
}

export async function perf(
  stateDir: string,
  from: string,
  to: string,
  opts: PerfOptions = {},
): Promise<PerfResult> {
  const rec = readLabRecord(stateDir);
  if (!rec) throw new UserError(`no lab record in ${stateDir}`, "is the lab up?", EXIT.usage);
  const lab = rec.lab;
  const seconds = opts.seconds ?? 5;
  const port = opts.port ?? 5201;
  const path = perfPath(lab, from, to);
  const netns = recordNetns(rec);
  const runner = new ProcessRunner(netns);
  const serverLife = seconds + 40;
  const noIperf = (vm: string) =>
    new UserError(
      `VM ${vm} has no iperf3`,
      "the built-in guest carries iperf3 when the host has it: install iperf3 on the host (apt-get install iperf3), then `qnet down` and `qnet up` the lab; a disk image needs iperf3 installed in it",
      EXIT.environment,
    );
  // The server: one test (-1), never longer than it may take.
  let hostServer: ReturnType<typeof spawn> | null = null;
  if (path.server === "host") {
    const argv = inNetns(netns, [
      "timeout",
      String(serverLife),
      "iperf3",
      "-s",
      "-1",
      "-p",
      String(port),
    ]);
    hostServer = spawn(argv[0]!, argv.slice(1), { stdio: "ignore" });
    hostServer.on("error", () => {});
  } else {
    const r = await execInVm(stateDir, lab, path.server, [
      "sh",
      "-c",
      `command -v iperf3 >/dev/null || exit 127; timeout ${serverLife} iperf3 -s -1 -p ${port} >/dev/null 2>&1 </dev/null &`,
    ]);
    if (r.exitCode === 127) throw noIperf(path.server);
    if (r.exitCode !== 0)
      throw new UserError(`could not start iperf3 in ${path.server}: ${r.stderr.toString()}`);
  }
  const tables = ["cat", "/proc/net/tcp", "/proc/net/tcp6"];
  const ready = await waitListening(
    async () =>
      path.server === "host"
        ? (await runner.run(tables, { allowFail: true })).stdout
        : (await execInVm(stateDir, lab, path.server, tables)).stdout.toString(),
    port,
    30_000,
  );
  if (!ready) {
    hostServer?.kill("SIGTERM");
    throw new UserError(
      `iperf3 did not start listening on port ${port} in ${path.server} within 30 s`,
    );
  }
  try {
    opts.progress?.(
      `iperf3 ${path.reverse ? `${to} → ${from} (reverse)` : `${path.client} → ${path.server}`} on ${path.network}, ${seconds} s`,
    );
    const argv = [
      "iperf3",
      "-c",
      path.address,
      "-p",
      String(port),
      "-t",
      String(seconds),
      "-J",
      ...(path.reverse ? ["-R"] : []),
    ];
    for (let attempt = 0; ; attempt++) {
      let out: string;
      let code: number;
      if (path.client === "host") {
        const r = await runner.run(argv, { allowFail: true, timeoutMs: (seconds + 30) * 1000 });
        out = r.stdout;
        code = r.exitCode;
      } else {
        const r = await execInVm(stateDir, lab, path.client, argv, {
          timeoutMs: (seconds + 30) * 1000,
        });
        if (r.exitCode === 127) throw noIperf(path.client);
        out = r.stdout.toString();
        code = r.exitCode;
      }
      // The server may not listen yet: iperf3 says so at once.
      if (code !== 0 && /unable to connect|Connection refused/i.test(out) && attempt < 10) {
        await sleep(500);
        continue;
      }
      return {
        lab: lab.name,
        from,
        to,
        network: path.network,
        address: path.address,
        seconds,
        ...parseIperf(out),
        reverse: path.reverse,
      };
    }
  } finally {
    hostServer?.kill("SIGTERM");
  }
}

export function renderPerf(r: PerfResult): string {
  const mbit = (b: number) => `${(b / 1e6).toFixed(2)} Mbit/s`;
  return `${r.from} → ${r.to} over ${r.network} (${r.address}${r.reverse ? ", iperf3 -R" : ""}), ${r.seconds} s: ${mbit(r.receivedBps)} received, ${mbit(r.sentBps)} sent, ${r.retransmits ?? "?"} retransmits\n`;
}
