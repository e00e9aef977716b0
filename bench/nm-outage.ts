// Benchmark: the host's outage while its LAN uplink moves onto a bridge, on one emulated LAN, in one run:
// the how-to's three nmcli commands as written, qnet's nmcli path (both on a real NetworkManager, eth0 static
// and DHCP), and qnet's iproute2 path (a second host on the same LAN without NetworkManager).
// Run as root: node dist/bench/nm-outage.js [--runs N]. Everything lives in namespaces it creates.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join } from "node:path";
import {
  type PingResult,
  settled,
  startPinger,
  startRouter,
  stopRouter,
} from "../test/e2e/helpers/lan.js";
import { startNetworkManager } from "../test/e2e/helpers/network-manager.js";
import { REPO_ROOT } from "../test/helpers/golden.js";
import { CLI } from "../test/helpers/topology.js";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : def;
};
const RUNS = Number(arg("--runs", "3"));
const P = `qnb-nmo-${process.pid % 100000}`;
const LAN = `${P}-lan`;
const NM_HOST = `${P}-nm`;
const IP_HOST = `${P}-ip`;
const EXAMPLE = join(REPO_ROOT, "examples", "lan-bridge.yaml");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sh = (argv: string[]) =>
  execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

const v4 = (ns: string, dev: string) =>
  sh(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", dev])
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(/\s+/)[3]!);

async function waitFor(what: string, test: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!test()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
  return Date.now() - t0;
}

interface Sample {
  variant: string;
  ping: PingResult;
  /** The host's IPv4 address before and after. */
  before: string;
  after: string;
  commandMs: number;
}

const samples: Sample[] = [];
const loads: number[] = [];

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "qnb-nmo-"));
  const state = mkdtempSync(join(tmpdir(), "qnb-nmo-state-"));
  const qnet = (args: string[]) =>
    spawnSync(process.execPath, [CLI, args[0]!, "--state-dir", state, ...args.slice(1)], {
      encoding: "utf8",
    });
  for (const ns of [LAN, NM_HOST, IP_HOST]) {
    sh(["ip", "netns", "add", ns]);
    sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
  }
  startRouter(LAN, NM_HOST, dir, { configureHost: false });
  // The iproute2 host: a second wire into the same LAN, a static address, no NetworkManager.
  sh([
    "ip",
    "link",
    "add",
    "name",
    `${P}-p`,
    "netns",
    LAN,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    IP_HOST,
  ]);
  sh(["ip", "-n", LAN, "link", "set", "dev", `${P}-p`, "master", "rbr", "up"]);
  sh(["ip", "-n", IP_HOST, "link", "set", "dev", "eth0", "up"]);
  sh(["ip", "-n", IP_HOST, "addr", "add", "192.168.50.3/24", "dev", "eth0"]);
  sh(["ip", "-n", IP_HOST, "route", "add", "default", "via", "192.168.50.1", "dev", "eth0"]);
  const nm = await startNetworkManager(NM_HOST, { mode: "dhcp" });
  // The static profile next to NetworkManager's DHCP one; each variant activates the one it needs.
  nm.nmcli([
    "connection",
    "add",
    "type",
    "ethernet",
    "ifname",
    "eth0",
    "con-name",
    "lan",
    "connection.autoconnect",
    "no",
    "ipv4.method",
    "manual",
    "ipv4.addresses",
    "192.168.50.2/24",
    "ipv4.gateway",
    "192.168.50.1",
    "ipv6.method",
    "disabled",
  ]);
  const profiles = { dhcp: "Wired connection 1", static: "lan" } as const;
  const sampler = setInterval(() => loads.push(loadavg()[0]!), 2000);

  const activate = async (mode: "dhcp" | "static") => {
    nm.nmcli(["connection", "up", profiles[mode]]);
    await waitFor("eth0's address", () => v4(NM_HOST, "eth0").length > 0, 30_000);
    await settled(NM_HOST);
    await sleep(500);
  };

  /** The how-to's section 2, literally; then put the host back (not measured). */
  const howto = async (mode: "dhcp" | "static") => {
    await activate(mode);
    const before = v4(NM_HOST, "eth0").join(" ");
    const pinger = startPinger(NM_HOST, "192.168.50.1");
    await sleep(1000);
    const t0 = Date.now();
    nm.nmcli(["c", "add", "type", "bridge", "ifname", "br0", "con-name", "br0"]);
    nm.nmcli([
      "c",
      "add",
      "type",
      "ethernet",
      "slave-type",
      "bridge",
      "con-name",
      "eth-br0",
      "ifname",
      "eth0",
      "master",
      "br0",
    ]);
    nm.nmcli(["c", "up", "eth-br0"]);
    const commandMs = Date.now() - t0;
    await waitFor(
      "the router through br0",
      () =>
        v4(NM_HOST, "br0").length > 0 &&
        spawnSync("ip", ["netns", "exec", NM_HOST, "ping", "-c1", "-W1", "192.168.50.1"]).status ===
          0,
      120_000,
    );
    await sleep(1000);
    const ping = await pinger.stop();
    const after = v4(NM_HOST, "br0").join(" ");
    nm.nmcli(["connection", "up", profiles[mode]]);
    nm.nmcli(["connection", "delete", "eth-br0", "br0"]);
    samples.push({
      variant: `how-to's nmcli commands, eth0 ${mode}`,
      ping,
      before,
      after,
      commandMs,
    });
  };

  const qnetUp = async (variant: string, ns: string, dev: string) => {
    const before = v4(ns, dev).join(" ");
    const pinger = startPinger(ns, "192.168.50.1");
    await sleep(1000);
    const t0 = Date.now();
    const r = qnet(["up", "--no-vms", "-q", "--netns", ns, EXAMPLE]);
    const commandMs = Date.now() - t0;
    if (r.status !== 0) throw new Error(`qnet up: ${r.stderr}`);
    await sleep(1000);
    const ping = await pinger.stop();
    const after = v4(ns, "br0").join(" ");
    const d = qnet(["down", "office"]);
    if (d.status !== 0) throw new Error(`qnet down: ${d.stderr}`);
    await settled(ns);
    samples.push({ variant, ping, before, after, commandMs });
  };

  /** Nothing changes: how long the gaps between 10 ms replies are anyway on this machine, at this load. */
  const idle = async () => {
    const before = v4(IP_HOST, "eth0").join(" ");
    const pinger = startPinger(IP_HOST, "192.168.50.1");
    await sleep(3000);
    samples.push({
      variant: "nothing changes (the noise floor)",
      ping: await pinger.stop(),
      before,
      after: before,
      commandMs: 0,
    });
  };

  try {
    for (let run = 0; run < RUNS; run++) {
      const order = [
        idle,
        () => howto("static"),
        () => howto("dhcp"),
        async () => {
          await activate("static");
          await qnetUp("qnet up (nmcli path), eth0 static", NM_HOST, "eth0");
        },
        async () => {
          await activate("dhcp");
          await qnetUp("qnet up (nmcli path), eth0 DHCP", NM_HOST, "eth0");
        },
        () => qnetUp("qnet up (iproute2 path), eth0 static, no NetworkManager", IP_HOST, "eth0"),
      ];
      // Rotate the order each run, so a drifting load hits every variant alike.
      for (let k = 0; k < order.length; k++) {
        const f = order[(k + run) % order.length]!;
        await f();
        const s = samples.at(-1)!;
        console.error(
          `run ${run + 1}/${RUNS} ${s.variant}: lost ${s.ping.sent - s.ping.received}/${s.ping.sent}, longest gap ${s.ping.maxGapMs} ms (load ${loadavg()[0]!.toFixed(2)})`,
        );
      }
    }
  } finally {
    clearInterval(sampler);
    qnet(["down", "office"]);
    await nm.stop();
    stopRouter(dir);
    for (const ns of [NM_HOST, IP_HOST, LAN]) spawnSync("ip", ["netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  }

  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const variants = [...new Set(samples.map((s) => s.variant))];
  const nmv = nm.nmcli(["--version"]).trim();
  loads.sort((a, b) => a - b);
  console.log(
    `Machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, kernel ${release()}, node ${process.version}, ${nmv}; ` +
      `load average (1 min) during the run: min ${loads[0]?.toFixed(2)}, median ${median(loads).toFixed(2)}, max ${loads.at(-1)?.toFixed(2)}\n`,
  );
  console.log(
    "| variant | longest gap, median (ms) | longest gap, max (ms) | pings lost, median (max) | host address before → after | command (ms, median) | runs |",
  );
  console.log("|---|---:|---:|---:|---|---:|---:|");
  for (const v of variants) {
    const ss = samples.filter((s) => s.variant === v);
    const lost = ss.map((s) => s.ping.sent - s.ping.received);
    const addrs = [...new Set(ss.map((s) => `${s.before} → ${s.after}`))].join("; ");
    console.log(
      `| ${v} | ${median(ss.map((s) => s.ping.maxGapMs))} | ${Math.max(...ss.map((s) => s.ping.maxGapMs))} | ${median(lost)} (${Math.max(...lost)}) | ${addrs} | ${Math.round(median(ss.map((s) => s.commandMs)))} | ${ss.length} |`,
    );
  }
}

await main();
