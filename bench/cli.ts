// Benchmark: what each CLI command costs from the shell, against node's own start-up (`node -e 0`) and
// against the npm tax (`npx qnet`), interleaved in one run. A 2-VM private lab runs for status/exec.
// Run as root: node dist/bench/cli.js [--reps 15]
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../test/helpers/golden.js";
import { CLI } from "../test/helpers/topology.js";

const i = process.argv.indexOf("--reps");
const REPS = i >= 0 ? Number(process.argv[i + 1]) : 15;
const state = mkdtempSync(join(tmpdir(), "qnet-bench-cli-"));
const ns = `qnb-cli-${process.pid}`;
const EXAMPLE = join(REPO_ROOT, "examples", "private-lan.yaml");
const node = process.execPath;
const qnet = (...args: string[]) => [node, CLI, ...args];

/** name, argv; every row runs REPS times, the rows interleaved. */
const ROWS: [string, string[]][] = [
  ["node -e 0 (baseline)", [node, "-e", "0"]],
  ["qnet --version", qnet("--version")],
  ["npx qnet --version (the npm tax)", ["npx", "--no-install", "qnet", "--version"]],
  ["qnet validate FILE", qnet("validate", EXAMPLE)],
  ["qnet plan FILE --json", qnet("plan", EXAMPLE, "--netns", ns, "--json", "--state-dir", state)],
  ["qnet status", qnet("status", "--state-dir", state)],
  ["qnet status LAB --json", qnet("status", "lab", "--json", "--state-dir", state)],
  ["qnet exec LAB vm0 -- true", qnet("exec", "lab", "vm0", "--state-dir", state, "--", "true")],
];

function timeOnce(argv: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, stdio: "ignore" });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}`);
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function main(): void {
  if (process.getuid?.() !== 0) throw new Error("run as root");
  const times = new Map<string, number[]>(ROWS.map(([k]) => [k, []]));
  const loads: number[] = [];
  try {
    execFileSync(node, [CLI, "up", EXAMPLE, "--netns", ns, "--state-dir", state, "-q"]);
    for (const [, argv] of ROWS) timeOnce(argv); // warm the page cache
    for (let r = 0; r < REPS; r++) {
      for (let k = 0; k < ROWS.length; k++) {
        const [name, argv] = ROWS[(k + r) % ROWS.length]!;
        times.get(name)!.push(timeOnce(argv));
      }
      loads.push(loadavg()[0]!);
    }
  } finally {
    spawnSync(node, [CLI, "down", "lab", "--state-dir", state], { stdio: "ignore" });
    spawnSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    rmSync(state, { recursive: true, force: true });
  }
  const base = median(times.get(ROWS[0]![0])!);
  console.log(
    `Machine: ${cpus()[0]?.model} × ${cpus().length}, kernel ${release()}, node ${process.version}; ${REPS} runs per row, interleaved; load average (1 min) ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}`,
  );
  console.log("");
  console.log("| command | median ms | min ms | max ms | ÷ node -e 0 |\n|---|---:|---:|---:|---:|");
  for (const [name] of ROWS) {
    const xs = times.get(name)!;
    console.log(
      `| ${name} | ${median(xs).toFixed(0)} | ${Math.min(...xs).toFixed(0)} | ${Math.max(...xs).toFixed(0)} | ${(median(xs) / base).toFixed(2)}× |`,
    );
  }
}

main();
