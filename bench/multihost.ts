// Benchmark: a lab over several hosts (network namespaces joined through an underlay namespace, kernel
// VXLAN between them). In one run: VM-to-VM throughput across hosts vs on one host; the time for a 3-host
// lab to come up vs the same VMs on one host; what grows with hosts and networks (devices, FDB entries,
// the time of one host's up and plan); the kernel's limit of ports per bridge and what qnet does.
// Run as root: node dist/bench/multihost.js [--runs 3] [--mib 64] [--hosts 2,4,8] [--networks 1,4,16]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { qnetWith } from "../test/e2e/helpers/host-state.js";
import { addNetns, delNetns, sh } from "../test/e2e/helpers/netns.js";
import { makeUnderlay, qnetAsync } from "../test/e2e/helpers/underlay.js";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    mib: { type: "string", default: "64" },
    hosts: { type: "string", default: "2,4,8" },
    networks: { type: "string", default: "1,4,16" },
  },
});
const RUNS = Number(args.runs);
const MIB = Number(args.mib);
const ID = process.pid;
const loads: number[] = [];
const sampler = setInterval(() => loads.push(loadavg()[0]!), 2000);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const now = () => performance.now();
const made: string[] = [];
/** A temporary directory, removed when the benchmark ends. */
const tmp = (what: string) => {
  const d = mkdtempSync(join(tmpdir(), `qnet-bench-mh-${what}-`));
  made.push(d);
  return d;
};
process.on("exit", () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});
function must(r: { status: number | null; stderr: string }, what: string) {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${r.stderr}`);
}

// vm1 and vm2 on h1, vm3 on h2, vm4 on h3, all on one network; the baseline has no hosts: one namespace.
const VMS = [
  ["vm1", "h1"],
  ["vm2", "h1"],
  ["vm3", "h2"],
  ["vm4", "h3"],
] as const;
function labText(multi: boolean): string {
  const hosts = multi
    ? "hosts:\n  h1: { address: 10.200.0.1 }\n  h2: { address: 10.200.0.2 }\n  h3: { address: 10.200.0.3 }\n"
    : "";
  const vms = VMS.map(
    ([vm, h]) =>
      `  ${vm}: { ${multi ? `host: ${h}, ` : ""}nics: [{ network: lan, ip: 10.30.0.${vm.slice(2)}0 }] }`,
  ).join("\n");
  return `name: mhb\n${hosts}networks:\n  lan: { type: bridge, subnet: 10.30.0.0/24 }\nvms:\n${vms}\n`;
}

/** The server VM: busybox httpd serving a file of `bytes` zeros from its RAM. */
const SERVER = (bytes: number) =>
  `mkdir -p /tmp/www && dd if=/dev/zero of=/tmp/www/f bs=65536 count=${bytes / 65536} 2>/dev/null && { httpd -p 8080 -h /tmp/www 2>/dev/null; true; }`;
/** The client VM: one download to /dev/null, timed in the guest (busybox date has no %N: /proc/uptime). */
const CLIENT = (ip: string) =>
  `cs() { read u _ < /proc/uptime; echo "\${u%.*}\${u#*.}"; }; s=$(cs); wget -q -O /dev/null http://${ip}:8080/f || exit 1; e=$(cs); echo $((e - s))`;

/** Mbit/s of `from` downloading `bytes` from busybox httpd on `to` (TCP, both guests under TCG). */
async function throughput(root: (vm: string) => string, from: string, to: string, ip: string) {
  const bytes = MIB * 1024 * 1024;
  const exec = (vm: string, script: string) =>
    qnetWith(root(vm), ["exec", "mhb", vm, "--timeout", "600", "--", "sh", "-c", script]);
  must(exec(to, SERVER(bytes)), `httpd on ${to}`);
  const r = exec(from, CLIENT(ip));
  const cs = Number(r.stdout.trim());
  if (r.status !== 0 || !cs || cs <= 0)
    throw new Error(`throughput ${to}->${from}: ${r.stdout} ${r.stderr}`);
  return (bytes * 8) / (cs / 100) / 1e6;
}

async function comeUpAndThroughput() {
  const file = join(tmp("file"), "lab.yaml");
  writeFileSync(file, labText(true));
  const single = join(tmp("file"), "single.yaml");
  writeFileSync(single, labText(false));
  const multiTimes: number[] = [];
  const singleTimes: number[] = [];
  const cross: number[] = [];
  const local: number[] = [];
  const singleBw: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    // 3 hosts: each host's `up` at once (as three machines would), until the last returns.
    const ul = makeUnderlay(`qnb-mh-${ID}`, 3);
    const roots = [1, 2, 3].map(() => tmp("state"));
    try {
      const t0 = now();
      const rs = await Promise.all(
        [1, 2, 3].map(
          (i) =>
            qnetAsync(roots[i - 1]!, ["up", file, "--host", `h${i}`, "--netns", ul.host(i), "-q"])
              .done,
        ),
      );
      multiTimes.push(now() - t0);
      for (const [i, r] of rs.entries()) must(r, `up h${i + 1}`);
      const rootOf = (vm: string) => roots[Number(VMS.find(([v]) => v === vm)![1].slice(1)) - 1]!;
      local.push(await throughput(rootOf, "vm1", "vm2", "10.30.0.20"));
      cross.push(await throughput(rootOf, "vm1", "vm3", "10.30.0.30"));
    } finally {
      for (const r of roots) {
        qnetWith(r, ["down", "mhb"]);
        rmSync(r, { recursive: true, force: true });
      }
      ul.cleanup();
    }
    // The same four VMs on one host (no hosts:, no VXLAN).
    const ns = `qnb-mh1-${ID}`;
    const root = tmp("state");
    addNetns(ns);
    try {
      const t0 = now();
      const r = await qnetAsync(root, ["up", single, "--netns", ns, "-q"]).done;
      singleTimes.push(now() - t0);
      must(r, "up single");
      singleBw.push(await throughput(() => root, "vm1", "vm3", "10.30.0.30"));
    } finally {
      qnetWith(root, ["down", "mhb"]);
      rmSync(root, { recursive: true, force: true });
      delNetns(ns);
    }
    console.error(`run ${run + 1}/${RUNS} done`);
  }
  return { multiTimes, singleTimes, cross, local, singleBw };
}

/** H hosts, N networks spanning all of them, one VM per host with a NIC on each (--no-vms). */
function growText(h: number, n: number): string {
  const hosts = Array.from({ length: h }, (_, i) => `  h${i + 1}: { address: 10.200.0.${i + 1} }`);
  const nets = Array.from(
    { length: n },
    (_, j) => `  n${j}: { type: bridge, subnet: 10.${40 + j}.0.0/24, gateway: none }`,
  );
  const vms = Array.from(
    { length: h },
    (_, i) =>
      `  vm${i + 1}: { host: h${i + 1}, nics: [${Array.from({ length: n }, (_, j) => `{ network: n${j} }`).join(", ")}] }`,
  );
  return `name: grow\nhosts:\n${hosts.join("\n")}\nnetworks:\n${nets.join("\n")}\nvms:\n${vms.join("\n")}\n`;
}

function grows(hostsList: number[], netsList: number[]) {
  const rows: string[][] = [];
  for (const h of hostsList) {
    for (const n of netsList) {
      const file = join(tmp("file"), "grow.yaml");
      writeFileSync(file, growText(h, n));
      const ul = makeUnderlay(`qnb-g-${ID}`, h);
      const roots = Array.from({ length: h }, () => tmp("state"));
      try {
        const ups: number[] = [];
        for (let i = 1; i <= h; i++) {
          const t0 = now();
          must(
            qnetWith(roots[i - 1]!, [
              "up",
              file,
              "--host",
              `h${i}`,
              "--netns",
              ul.host(i),
              "--no-vms",
              "-q",
            ]),
            "up",
          );
          ups.push(now() - t0);
        }
        const t0 = now();
        must(
          qnetWith(roots[0]!, ["plan", file, "--host", "h1", "--netns", ul.host(1), "--json"]),
          "plan",
        );
        const plan = now() - t0;
        const links = JSON.parse(
          sh(["ip", "-n", ul.host(1), "-json", "-details", "link", "show"]),
        ) as {
          linkinfo?: { info_kind?: string };
        }[];
        const count = (k: string) => links.filter((l) => l.linkinfo?.info_kind === k).length;
        const fdb = (
          JSON.parse(sh(["bridge", "-n", ul.host(1), "-json", "fdb", "show"])) as { dst?: string }[]
        ).filter((e) => e.dst).length;
        rows.push([
          String(h),
          String(n),
          String(count("bridge")),
          String(count("vxlan")),
          String(count("tun")),
          String(fdb),
          String(h * n * (h - 1)),
          median(ups).toFixed(0),
          plan.toFixed(0),
        ]);
        console.error(`grow: ${h} hosts x ${n} networks done`);
      } finally {
        for (const r of roots) {
          qnetWith(r, ["down", "grow"]);
          rmSync(r, { recursive: true, force: true });
        }
        ul.cleanup();
      }
    }
  }
  return rows;
}

/** The kernel's limit, measured: veths attached to one bridge until `master` fails. */
function portLimit(): { ports: number; error: string } {
  const ns = `qnb-ports-${ID}`;
  addNetns(ns);
  try {
    const lines = ["link add br0 type bridge"];
    for (let i = 1; i <= 1030; i++)
      lines.push(`link add d${i} type veth peer name e${i}`, `link set d${i} master br0`);
    const f = join(tmp("ports"), "b");
    writeFileSync(f, `${lines.join("\n")}\n`);
    let error = "";
    try {
      sh(["ip", "-n", ns, "-batch", f]);
    } catch (e) {
      error = String((e as { stderr?: string }).stderr ?? e)
        .trim()
        .split("\n")[0]!;
    }
    const ports = sh(["ip", "-n", ns, "-o", "link", "show", "master", "br0"])
      .trim()
      .split("\n").length;
    return { ports, error };
  } finally {
    delNetns(ns);
  }
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i]!)).join(" | ")} |`;
  return [line(head), `|${w.map((x) => "-".repeat(x + 2)).join("|")}|`, ...rows.map(line)].join(
    "\n",
  );
}

async function main() {
  console.log(
    `machine: ${cpus()[0]?.model} x ${cpus().length}, kernel ${release()}, node ${process.version}`,
  );
  const limit = portLimit();
  const up = await comeUpAndThroughput();
  const g = grows(args.hosts!.split(",").map(Number), args.networks!.split(",").map(Number));
  clearInterval(sampler);
  const f = (xs: number[], d = 0) =>
    `${median(xs).toFixed(d)} (${xs.map((x) => x.toFixed(d)).join(", ")})`;
  console.log(
    `\n### Throughput VM to VM (${MIB} MiB over HTTP, busybox httpd to wget, timed in the client; Mbit/s, median (runs))\n`,
  );
  console.log(
    table(
      ["pair", "Mbit/s"],
      [
        ["vm2 (h1) to vm1 (h1): same host, spanned network", f(up.local)],
        ["vm3 (h2) to vm1 (h1): across hosts, VXLAN", f(up.cross)],
        ["vm3 to vm1, the same VMs on one host (no VXLAN)", f(up.singleBw)],
      ],
    ),
  );
  console.log("\n### Time to come up (4 VMs, `qnet up` until every guest agent answers; ms)\n");
  console.log(
    table(
      ["lab", "ms"],
      [
        ["3 hosts (2+1+1 VMs), the three `up` at once", f(up.multiTimes)],
        ["one host, the same 4 VMs", f(up.singleTimes)],
      ],
    ),
  );
  console.log("\n### What grows (host h1's part; --no-vms; every network spans every host)\n");
  console.log(
    table(
      [
        "hosts",
        "networks",
        "bridges",
        "VXLAN devices",
        "taps",
        "FDB entries (dst)",
        "FDB entries, whole lab",
        "up of one host, ms (median)",
        "plan, ms",
      ],
      g,
    ),
  );
  console.log(
    `\n### Ports per bridge\n\nveths attached to one bridge: ${limit.ports} accepted; the next: \`${limit.error}\``,
  );
  console.log(
    `\nload average during the run: min ${Math.min(...loads).toFixed(2)}, median ${median(loads).toFixed(2)}, max ${Math.max(...loads).toFixed(2)}`,
  );
}

main().catch((e) => {
  clearInterval(sampler);
  console.error(e);
  process.exitCode = 1;
});
