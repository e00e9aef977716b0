// `qnet capture`: stream pcap of one VM NIC. A tap is read by tcpdump inside the lab's namespace; a user
// network NIC has no host device, so QEMU's filter-dump is attached through QMP (writing into a FIFO that
// qnet reads first, so QEMU never waits) and detached again when the capture ends.
import { spawn } from "node:child_process";
import { constants, mkdirSync, openSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { EXIT, UserError } from "../errors.js";
import { livePid } from "../host/pidfile.js";
import { QmpClient } from "../host/qmp.js";
import { inNetns } from "../host/runner.js";
import { readLabRecord, recordNetns } from "../host/state.js";
import { vmFiles } from "../model/paths.js";
import { qemuNameArg } from "../render/qemu-args.js";
import { findNic } from "./impair.js";

export interface CaptureOptions {
  /** "-" for stdout, else a file path. */
  write: string;
  count?: number;
  /** A BPF filter expression (one argument; tcpdump parses it). */
  filter?: string;
  progress?: (m: string) => void;
  /** Resolves when the capture must stop (Ctrl-C). */
  stop?: Promise<unknown>;
}

export interface CaptureResult {
  vm: string;
  nic: number;
  via: "tap" | "filter-dump";
  device: string;
}

/** tcpdump's arguments after the input: where the pcap goes, how many, the filter. */
function outputArgs(o: CaptureOptions): string[] {
  return [
    "-U",
    "-n",
    "-Z",
    "root",
    "-w",
    o.write,
    ...(o.count !== undefined ? ["-c", String(o.count)] : []),
    ...(o.filter ? ["--", o.filter] : []),
  ];
}

/** Run tcpdump until it exits, stopping it with SIGINT (it then flushes its file) when `stop` fires. */
function runTcpdump(
  argv: string[],
  o: CaptureOptions,
  stdin: "ignore" | "pipe",
  onStart?: (c: ReturnType<typeof spawn>) => void,
): Promise<number | null> {
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: [stdin, o.write === "-" ? "inherit" : "ignore", "pipe"],
  });
  let err = "";
  // tcpdump's own chatter ("listening on …", "reading from file -") stays out of the way; its
  // errors are in the message below, its packet counts in the last line.
  child.stderr!.on("data", (d: Buffer) => {
    err += d;
  });
  onStart?.(child);
  o.stop?.then(() => child.kill("SIGINT"));
  return new Promise((resolve, reject) => {
    child.on("error", (e) =>
      reject(
        new UserError(
          `cannot run tcpdump: ${e.message}`,
          "install tcpdump (Debian: apt-get install tcpdump)",
          EXIT.environment,
        ),
      ),
    );
    child.on("exit", (code, signal) => {
      const counts = err
        .split("\n")
        .filter((l) => /packets? (captured|received by filter)/.test(l));
      if (counts.length > 0) o.progress?.(counts.join("; "));
      if (code !== 0 && signal !== "SIGINT" && !/packets? captured/.test(err))
        reject(new UserError(`tcpdump failed (exit ${code ?? signal}): ${err.trim()}`));
      else resolve(code);
    });
  });
}

const CAPTURE_ID = /^qnet-capture-(\d+)$/;

/** Remove filter-dump objects of earlier captures whose qnet died without detaching them. */
async function removeStale(qmp: QmpClient): Promise<void> {
  const objs = await qmp.execute<{ name: string }[]>("qom-list", { path: "/objects" });
  for (const o of objs) {
    const m = CAPTURE_ID.exec(o.name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive || pid === process.pid) await qmp.execute("object-del", { id: o.name });
  }
}

async function withQmp<T>(socket: string, fn: (c: QmpClient) => Promise<T>): Promise<T> {
  const c = await QmpClient.connect(socket, { timeoutMs: 5_000 });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

export async function captureNic(
  stateDir: string,
  target: string,
  o: CaptureOptions,
): Promise<CaptureResult> {
  const rec = readLabRecord(stateDir);
  if (!rec) throw new UserError(`no lab record in ${stateDir}`, "is the lab up?", EXIT.usage);
  const { vm, nic } = findNic(rec.lab, target);
  const files = vmFiles(stateDir, vm.name);
  if (livePid(files.pidfile, qemuNameArg(rec.lab.name, vm.name)) === null)
    throw new UserError(
      `VM ${vm.name} of lab ${rec.lab.name} is not running`,
      "`qnet up` starts it",
    );
  if (nic.tap && nic.networkType !== "user") {
    const argv = inNetns(recordNetns(rec), ["tcpdump", "-i", nic.tap, ...outputArgs(o)]);
    o.progress?.(`capturing on ${nic.tap} (${vm.name} nic ${nic.index})`);
    await runTcpdump(argv, o, "ignore");
    return { vm: vm.name, nic: nic.index, via: "tap", device: nic.tap };
  }
  // A user network: QEMU's filter-dump, into a FIFO qnet opens for reading before QEMU opens it.
  const id = `qnet-capture-${process.pid}`;
  const dir = join(stateDir, "capture");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fifo = join(dir, `${id}.pcap`);
  rmSync(fifo, { force: true });
  const mk = spawn("mkfifo", ["-m", "0600", fifo], { stdio: "ignore" });
  await new Promise((r) => mk.on("exit", r));
  const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const pipe = new Socket({ fd, readable: true, writable: false });
  let attached = false;
  try {
    await withQmp(files.qmp, async (c) => {
      await removeStale(c);
      await c.execute("object-add", {
        "qom-type": "filter-dump",
        id,
        netdev: nic.netdevId,
        file: fifo,
        queue: "all",
      });
    });
    attached = true;
    o.progress?.(`capturing ${vm.name} nic ${nic.index} (user network) through QEMU's filter-dump`);
    await runTcpdump(["tcpdump", "-r", "-", ...outputArgs(o)], o, "pipe", (child) => {
      pipe.pipe(child.stdin!);
      child.stdin!.on("error", () => {}); // tcpdump stopped reading (-c reached)
    });
  } finally {
    pipe.unpipe();
    pipe.destroy();
    if (attached) await withQmp(files.qmp, (c) => c.execute("object-del", { id }));
    rmSync(fifo, { force: true });
  }
  return { vm: vm.name, nic: nic.index, via: "filter-dump", device: nic.netdevId };
}
