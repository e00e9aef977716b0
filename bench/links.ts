// Benchmark of the data plane, in one run: VM↔VM throughput over a bridge for virtio-net (qnet's default)
// and e1000 (the seed's), host↔VM, user networking vs tap, through `qnet perf` (iperf3 in the built-in
// guests); the boot cost of carrying iperf3 in the guest. Medians of interleaved rounds; ratios matter.
// Run as root: node dist/bench/links.js [--rounds 3] [--seconds 5]
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildGuest } from "../src/guest/build.js";
import { READY_PREFIX } from "../src/guest/init-script.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const opt = (name: string, d: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : d;
};
const ROUNDS = Number(opt("rounds", "3"));
const SECONDS = opt("seconds", "5");
const ns = `qnb-links-${process.pid}`;
const state = mkdtempSync(join(tmpdir(), "qnet-bench-links-"));
const fileDir = mkdtempSync(join(tmpdir(), "qnet-bench-links-file-"));
const file = join(fileDir, "bl.yaml");

const LAB = `name: bl
networks:
  lan:
    type: bridge
    subnet: 10.0.8.0/24
  wan:
    type: user
vms:
  va: { nics: [{ network: lan }] }
  vb: { nics: [{ network: lan }] }
  ea: { nics: [{ network: lan, model: e1000 }] }
  eb: { nics: [{ network: lan, model: e1000 }] }
  vu: { nics: [{ network: wan }] }
`;

function qnet(...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, args[0]!, "--state-dir", state, ...args.slice(1)], {
    encoding: "utf8",
    timeout: 600_000,
  });
  if (r.status !== 0) throw new Error(`qnet ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Seconds from QEMU's start to the guest's ready line, booting a built-in guest directly. */
function bootSeconds(kernel: string, initrd: string): number {
  const t0 = process.hrtime.bigint();
  const script = `
const { spawn } = require("child_process");
const q = spawn("qemu-system-x86_64", ["-nodefaults","-no-user-config","-no-reboot","-display","none","-machine","q35,accel=tcg","-cpu","max","-m","256","-kernel",process.argv[1],"-initrd",process.argv[2],"-append","console=ttyS0 quiet panic=-1 qnet.hostname=b","-serial","stdio"]);
let out = "";
q.stdout.on("data", (d) => { out += d; if (out.includes(${JSON.stringify(READY_PREFIX)})) { q.kill(); process.exit(0); } });
setTimeout(() => { q.kill(); process.exit(1); }, 120000);`;
  const r = spawnSync(process.execPath, ["-e", script, kernel, initrd], { timeout: 130_000 });
  if (r.status !== 0) throw new Error("guest did not boot");
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function main() {
  const pairs: [string, string, string][] = [
    ["virtio-net VM→VM (tap, bridge)", "va", "vb"],
    ["e1000 VM→VM (tap, bridge)", "ea", "eb"],
    ["host→VM virtio-net (tap)", "host", "va"],
    ["VM→host virtio-net (tap)", "va", "host"],
    ["VM→host virtio-net (user networking)", "vu", "host"],
    ["host→VM virtio-net (user networking, iperf3 -R)", "host", "vu"],
  ];
  const results = new Map<string, number[]>(pairs.map(([k]) => [k, []]));
  writeFileSync(file, LAB);
  try {
    // qnet creates the namespace (loopback up: QEMU's user networking reaches the host on 127.0.0.1).
    qnet("up", file, "--netns", ns, "--wait", "300");
    for (let r = 0; r < ROUNDS; r++) {
      for (const [k, from, to] of pairs) {
        const p = JSON.parse(qnet("perf", "bl", from, to, "--seconds", SECONDS, "--json"));
        results.get(k)!.push(p.receivedBps / 1e6);
        process.stderr.write(`round ${r + 1} ${k}: ${(p.receivedBps / 1e6).toFixed(1)} Mbit/s\n`);
      }
    }
  } finally {
    spawnSync(process.execPath, [CLI, "down", "--state-dir", state, "bl"]);
    spawnSync("ip", ["netns", "del", ns]);
    rmSync(state, { recursive: true, force: true });
    rmSync(fileDir, { recursive: true, force: true });
  }
  const with_ = await buildGuest({ nicModels: ["virtio-net-pci"] });
  const without = await buildGuest({ nicModels: ["virtio-net-pci"], iperf3: false });
  const boots = { with: [] as number[], without: [] as number[] };
  for (let r = 0; r < ROUNDS + 2; r++) {
    boots.without.push(bootSeconds(without.kernel, without.initrd));
    boots.with.push(bootSeconds(with_.kernel, with_.initrd));
  }
  const size = (p: string) =>
    Number(spawnSync("stat", ["-c", "%s", p], { encoding: "utf8" }).stdout);
  const m = (k: string) => median(results.get(k)!);
  const base = m("e1000 VM→VM (tap, bridge)");
  console.log(
    `machine: ${cpus().length} × ${cpus()[0]?.model}, Linux ${release()}, QEMU under TCG; /dev/vhost-net ${existsSync("/dev/vhost-net") ? "present" : "absent"}; ${ROUNDS} rounds of ${SECONDS} s each, interleaved\n`,
  );
  console.log("| path | median Mbit/s | runs | vs e1000 VM→VM |\n|---|---|---|---|");
  for (const [k] of pairs)
    console.log(
      `| ${k} | ${m(k).toFixed(1)} | ${results
        .get(k)!
        .map((x) => x.toFixed(1))
        .join(", ")} | ${(m(k) / base).toFixed(2)}× |`,
    );
  console.log(
    `\nbuilt-in guest boot to ready (median of ${ROUNDS + 2}): without iperf3 ${median(boots.without).toFixed(2)} s (initrd ${(size(without.initrd) / 1024).toFixed(0)} KiB), with iperf3 ${median(boots.with).toFixed(2)} s (initrd ${(size(with_.initrd) / 1024).toFixed(0)} KiB); runs ${boots.without.map((x) => x.toFixed(2)).join(", ")} / ${boots.with.map((x) => x.toFixed(2)).join(", ")}`,
  );
}

await main();
