// Benchmark: time from DHCP client start to every client holding its lease, qnet's dnsmasq settings vs
// dnsmasq defaults, N veth-namespace "VMs" running busybox udhcpc. Root; everything in throwaway namespaces.
// Usage: node dist/bench/dhcp.js [runs=5] [sizes=2,4]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { compileTopology } from "../src/load/compile.js";
import type { BridgeNetwork, Lab } from "../src/model/lab.js";
import { dnsmasqPaths, renderDnsmasqConf } from "../src/render/dnsmasq-conf.js";

const BB = "/bin/busybox";
const runs = Number(process.argv[2] ?? 5);
const sizes = (process.argv[3] ?? "2,4").split(",").map(Number);
const ID = process.pid;

type Mode = "qnet" | "qnet-without-no-ping" | "dnsmasq-defaults";
const MODES: Mode[] = ["qnet", "qnet-without-no-ping", "dnsmasq-defaults"];

const run = (argv: string[]) => execa(argv[0]!, argv.slice(1), { env: { LC_ALL: "C" } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function labOf(n: number): Lab {
  const vms = Array.from({ length: n }, (_, i) => `  vm${i}: { nics: [{ network: lan }] }`).join(
    "\n",
  );
  return compileTopology(
    `name: bench\nnetworks:\n  lan: { type: bridge, subnet: 10.88.0.0/24 }\nvms:\n${vms}\n`,
    "bench.yaml",
  ).lab;
}

/** The config for a mode: qnet's, qnet's minus no-ping, or what a plain dnsmasq DHCP setup uses. */
function confFor(mode: Mode, lab: Lab, net: BridgeNetwork, dir: string): string {
  const q = renderDnsmasqConf(lab, net, dir);
  if (mode === "qnet") return q;
  if (mode === "qnet-without-no-ping") return q.replace(/^no-ping$/m, "");
  const p = dnsmasqPaths(dir, net.name);
  return [
    `interface=${net.bridge}`,
    "bind-dynamic",
    "except-interface=lo",
    "dhcp-range=10.88.0.2,10.88.0.254,12h",
    `dhcp-leasefile=${p.leasefile}`,
    `pid-file=${p.pidfile}`,
    `log-facility=${p.logfile}`,
    "port=0",
    "log-dhcp",
    "",
  ].join("\n");
}

async function once(n: number, mode: Mode): Promise<{ all: number; each: number[] }> {
  const lab = labOf(n);
  const net = lab.networks[0] as BridgeNetwork;
  const dir = mkdtempSync(join(tmpdir(), "qnt-bench-"));
  const labNs = `qnt-bench-${ID}-lab`;
  const vmNs = lab.vms.map((_, i) => `qnt-bench-${ID}-vm${i}`);
  let pid: number | null = null;
  try {
    await run(["ip", "netns", "add", labNs]);
    await run(["ip", "-n", labNs, "link", "add", net.bridge, "type", "bridge"]);
    await run(["ip", "-n", labNs, "addr", "add", `${net.gateway}/24`, "dev", net.bridge]);
    await run(["ip", "-n", labNs, "link", "set", net.bridge, "up"]);
    for (const [i, vm] of lab.vms.entries()) {
      const ns = vmNs[i]!;
      await run(["ip", "netns", "add", ns]);
      await run([
        "ip",
        "-n",
        labNs,
        "link",
        "add",
        `bv${i}`,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns,
      ]);
      await run(["ip", "-n", ns, "link", "set", "eth0", "address", vm.nics[0]!.mac, "up"]);
      await run(["ip", "-n", labNs, "link", "set", `bv${i}`, "master", net.bridge, "up"]);
    }
    const p = dnsmasqPaths(dir, net.name);
    writeFileSync(p.conf, confFor(mode, lab, net, dir));
    await run(["ip", "netns", "exec", labNs, "dnsmasq", `--conf-file=${p.conf}`]);
    pid = Number((await execa("cat", [p.pidfile])).stdout);
    await sleep(300); // let the bridge ports forward (no STP: immediate) and dnsmasq settle
    const t0 = performance.now();
    const each = await Promise.all(
      vmNs.map(async (ns) => {
        const r = await execa(
          "ip",
          [
            "netns",
            "exec",
            ns,
            BB,
            "udhcpc",
            "-i",
            "eth0",
            "-f",
            "-q",
            // Like a guest: keep trying (a failed attempt restarts after -A 1 s) instead of giving up.
            "-t",
            "20",
            "-T",
            "1",
            "-A",
            "1",
            "-s",
            "/bin/true",
          ],
          { reject: false, timeout: 60_000 },
        );
        if (r.exitCode !== 0)
          throw new Error(
            `udhcpc failed in ${ns}: ${r.stderr}\n${await execa("cat", [dnsmasqPaths(dir, net.name).logfile]).then((x) => x.stdout)}`,
          );
        return performance.now() - t0;
      }),
    );
    return { all: Math.max(...each), each };
  } finally {
    if (pid)
      try {
        process.kill(pid, "SIGTERM");
      } catch {}
    for (const ns of [...vmNs, labNs]) await execa("ip", ["netns", "del", ns], { reject: false });
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const rows: string[] = [
  "| VMs | settings | median time to all leases (ms) | median per-client (ms) | ratio vs qnet |",
  "|---|---|---|---|---|",
];
for (const n of sizes) {
  const res = new Map<Mode, { all: number[]; each: number[] }>();
  for (let r = 0; r < runs; r++) {
    // Interleave modes so drift on the machine hits them alike.
    for (const mode of MODES) {
      const x = await once(n, mode);
      const acc = res.get(mode) ?? { all: [], each: [] };
      acc.all.push(x.all);
      acc.each.push(...x.each);
      res.set(mode, acc);
    }
  }
  const base = median(res.get("qnet")!.all);
  for (const mode of MODES) {
    const m = res.get(mode)!;
    rows.push(
      `| ${n} | ${mode} | ${median(m.all).toFixed(0)} | ${median(m.each).toFixed(0)} | ${(median(m.all) / base).toFixed(2)} |`,
    );
  }
}
console.log(`DHCP lease time, ${runs} runs each (busybox udhcpc in veth namespaces)\n`);
console.log(rows.join("\n"));
