// Benchmark: compile (parse + validate + resolve) and plan a generated 5,000-VM, 50-network topology.
// Baseline in the same run: the bare `yaml` parse of the same text (the floor any loader pays).
// Run: npx tsc -p tsconfig.json && node dist/bench/validate-plan.js [vms] [networks] [runs]
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { LineCounter, parse, parseDocument } from "yaml";
import { planView } from "../src/lab/plan-view.js";
import { compileTopology } from "../src/load/compile.js";

const VMS = Number(process.argv[2] ?? 5000);
const NETWORKS = Number(process.argv[3] ?? 50);
const RUNS = Number(process.argv[4] ?? 7);

/** A topology of `vms` VMs over `networks` /16 bridge networks; every 10th VM has a second NIC and fixed values. */
export function generateTopology(vms: number, networks: number): string {
  const out = ["name: bench", "networks:"];
  for (let n = 0; n < networks; n++) {
    out.push(
      `  net${n}:`,
      "    type: bridge",
      `    subnet: 10.${n}.0.0/16`,
      `    nat: ${n % 2 === 0}`,
    );
    out.push(`    forwards: ["tcp:${20000 + n}:vm${n}:22"]`);
  }
  out.push("vms:");
  for (let v = 0; v < vms; v++) {
    const n = v % networks;
    out.push(`  vm${v}:`, "    memory: 128", "    nics:", `      - network: net${n}`);
    if (v % 10 === 0) {
      const m = (v >>> 8) & 255;
      out.push(
        `        ip: 10.${n}.${200 + (v % 50)}.${((v / 50) % 250) | 0}`,
        `        mac: "52:54:01:${m.toString(16).padStart(2, "0")}:${(v & 255).toString(16).padStart(2, "0")}:00"`,
      );
      out.push(`      - { network: net${(n + 1) % networks}, model: e1000 }`);
    }
  }
  return `${out.join("\n")}\n`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function measure(fn: () => unknown): { median: number; min: number; max: number } {
  fn(); // warm-up, not counted
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return { median: median(times), min: Math.min(...times), max: Math.max(...times) };
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1]!.trim();
  } catch {}
  return cpus()[0]?.model ?? "unknown";
}

const text = generateTopology(VMS, NETWORKS);
const facts = { kvm: true, vhost: false };
const { lab } = compileTopology(text, "bench.yaml"); // must be valid
const nics = lab.vms.reduce((n, vm) => n + vm.nics.length, 0);

const rows: [string, ReturnType<typeof measure>][] = [
  [
    "yaml `parse` (baseline: plain data, uniqueKeys off)",
    measure(() => parse(text, { uniqueKeys: false })),
  ],
  [
    "yaml `parseDocument` with positions (baseline)",
    measure(() => parseDocument(text, { lineCounter: new LineCounter(), uniqueKeys: false })),
  ],
  ["compile: parse + validate + resolve", measure(() => compileTopology(text, "bench.yaml"))],
  ["planView (argv of every VM)", measure(() => planView(lab, facts, "/run/qnet/bench"))],
  [
    "compile + planView",
    measure(() => planView(compileTopology(text, "bench.yaml").lab, facts, "/run/qnet/bench")),
  ],
];
const floor = rows[1]![1].median;

console.log(
  `## validate + plan: ${VMS} VMs, ${NETWORKS} networks, ${nics} NICs, ${(text.length / 1024).toFixed(0)} KiB of YAML\n`,
);
console.log(
  `Machine: ${cpuModel()}, ${cpus().length} CPUs, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}; Node ${process.version}; ${RUNS} runs after one warm-up.\n`,
);
console.log("| step | median ms | min ms | max ms | × parseDocument |");
console.log("|---|---:|---:|---:|---:|");
for (const [name, r] of rows) {
  console.log(
    `| ${name} | ${r.median.toFixed(1)} | ${r.min.toFixed(1)} | ${r.max.toFixed(1)} | ${(r.median / floor).toFixed(2)} |`,
  );
}
const total = rows[4]![1].median;
console.log(
  `\nTarget: compile + plan under 1000 ms: ${total < 1000 ? "met" : "NOT met"} (${total.toFixed(0)} ms median).`,
);
