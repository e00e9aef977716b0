// Benchmark: qnet's host engine vs one `ip` per step (the seed) vs a bare `ip -batch`, 10/100/1000 taps.
// Run as root: node dist/bench/host-engine.js [--reps N] [--sizes 10,100,1000]. Works in a fresh namespace.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// qnet's modules are imported where used, so the child loads only what a real `up`/`down` loads.

const self = fileURLToPath(import.meta.url);
const LAB = "bench";

/** Child mode: one qnet `up` or `down` in a fresh process, so start-up and module loading count. */
async function child(mode: string, root: string, taps: number, ns: string): Promise<void> {
  const { openLabState, saveLabRecord } = await import("../src/host/state.js");
  const state = await openLabState({ stateRoot: root, lab: LAB });
  if (mode === "up") {
    // up compiles a topology (YAML + validation), as `qnet up FILE` does.
    const { bigBridgeLab, HOST_KINDS } = await import("../test/e2e/helpers/big-lab.js");
    const { reconcile } = await import("../src/engine/engine.js");
    const { Journal } = await import("../src/host/journal.js");
    const { ProcessRunner } = await import("../src/host/runner.js");
    const lab = bigBridgeLab(LAB, taps, ns);
    saveLabRecord(state.dir, lab, { netns: ns, noVms: true });
    await reconcile(
      {
        lab,
        stateDir: state.dir,
        runner: new ProcessRunner(ns),
        journal: new Journal(state.dir),
        facts: { vhost: false, kvm: false },
        options: {},
        progress: () => {},
      },
      { only: HOST_KINDS },
    );
  } else {
    // down works from the state directory alone: no topology, no compiler.
    const { downLab } = await import("../src/engine/undo.js");
    const r = await downLab({ stateDir: state.dir });
    if (r.errors.length) throw new AggregateError(r.errors, "down failed");
  }
  state.release();
}

const ip = (ns: string, ...args: string[]) =>
  execFileSync("ip", ["-n", ns, ...args], { stdio: "ignore" });
const now = () => Number(process.hrtime.bigint()) / 1e6;

function linkCount(ns: string): number {
  return JSON.parse(execFileSync("ip", ["-n", ns, "-json", "link", "show"], { encoding: "utf8" }))
    .length;
}

interface Variant {
  name: string;
  up(): void;
  down(): void;
}

async function variants(ns: string, taps: number, root: string, work: string): Promise<Variant[]> {
  const { bigBridgeLab } = await import("../test/e2e/helpers/big-lab.js");
  const { planLab } = await import("../src/kinds/index.js");
  const { tapsOf } = await import("../src/kinds/tap.js");
  const { planEnv } = await import("../src/engine/engine.js");
  const { emptyObservation } = await import("../src/facts/types.js");
  const { deleteLines } = await import("../src/host/links.js");
  const lab = bigBridgeLab(LAB, taps, ns);
  const net = lab.networks[0]!;
  if (net.type !== "bridge") throw new Error("a bridge network");
  const want = {
    taps: tapsOf(lab),
    bridges: [{ name: net.bridge, address: net.gateway ? `${net.gateway}/${net.prefix}` : null }],
  };
  const br = want.bridges[0]!;
  const env = planEnv(lab, {
    stateDir: root,
    netns: ns,
    vms: false,
    machine: { kvm: false, vhost: false },
  });
  const upLines = planLab(
    env,
    emptyObservation(ns, true),
    undefined,
    new Set(["bridge", "address", "tap"]),
  ).actions.flatMap((a) => a.batch ?? []);
  // The same lines qnet's down sends (taps newest first, then the bridge; grouped delete).
  const downLines = deleteLines([...want.taps.map((t) => t.name).reverse(), br.name], "");
  const upFile = join(work, "up.batch");
  const downFile = join(work, "down.batch");
  writeFileSync(upFile, `${upLines.join("\n")}\n`);
  writeFileSync(downFile, `${downLines.join("\n")}\n`);
  const node = (mode: string) =>
    execFileSync(process.execPath, [self, "--child", mode, root, String(taps), ns], {
      stdio: "inherit",
    });
  return [
    {
      name: "qnet (node start-up, observe, plan, journal, one ip -batch)",
      up: () => node("up"),
      down: () => node("down"),
    },
    {
      name: "one ip process per step (seed)",
      up: () => {
        ip(ns, "link", "add", "name", br.name, "type", "bridge");
        for (const t of want.taps) {
          ip(ns, "tuntap", "add", "dev", t.name, "mode", "tap");
          ip(ns, "link", "set", "dev", t.name, "master", br.name);
          ip(ns, "link", "set", "dev", t.name, "up");
        }
        if (br.address) ip(ns, "addr", "add", br.address, "dev", br.name);
        ip(ns, "link", "set", "dev", br.name, "up");
      },
      down: () => {
        for (const t of want.taps) ip(ns, "link", "del", "dev", t.name);
        ip(ns, "link", "del", "dev", br.name);
      },
    },
    {
      name: "bare ip -batch (same lines)",
      up: () => ip(ns, "-batch", upFile),
      down: () => ip(ns, "-batch", downFile),
    },
  ];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
}

async function main(): Promise<void> {
  const sizes = arg("--sizes", "10,100,1000").split(",").map(Number);
  const repsArg = process.argv.includes("--reps") ? Number(arg("--reps", "3")) : null;
  const ns = `qnt-host-bench-${process.pid}`;
  const work = mkdtempSync(join(tmpdir(), "qnet-bench-"));
  execFileSync("ip", ["netns", "add", ns]);
  const rows: string[] = [];
  try {
    for (const n of sizes) {
      const reps = repsArg ?? (n >= 1000 ? 3 : 5);
      const vs = await variants(ns, n, join(work, "state"), work);
      const times = vs.map(() => ({ up: [] as number[], down: [] as number[] }));
      for (let r = 0; r < reps; r++) {
        // Interleaved, order rotated each repetition.
        for (let k = 0; k < vs.length; k++) {
          const i = (k + r) % vs.length;
          const v = vs[i]!;
          let t = now();
          v.up();
          times[i]!.up.push(now() - t);
          if (linkCount(ns) !== n + 2)
            throw new Error(`${v.name}: expected ${n + 2} links after up`);
          t = now();
          v.down();
          times[i]!.down.push(now() - t);
          if (linkCount(ns) !== 1) throw new Error(`${v.name}: namespace not clean after down`);
        }
        process.stderr.write(`taps=${n} rep ${r + 1}/${reps} done\n`);
      }
      const tot = times.map((t) => median(t.up.map((u, j) => u + t.down[j]!)));
      const bare = tot[2]!;
      const seed = tot[1]!;
      vs.forEach((v, i) => {
        const t = times[i]!;
        rows.push(
          `| ${n} | ${v.name} | ${median(t.up).toFixed(0)} | ${median(t.down).toFixed(0)} | ${tot[i]!.toFixed(0)} | ${(tot[i]! / bare).toFixed(2)}× | ${(seed / tot[i]!).toFixed(1)}× | ${reps} |`,
        );
      });
    }
  } finally {
    try {
      execFileSync("ip", ["netns", "del", ns]);
    } catch {
      // already gone
    }
    rmSync(work, { recursive: true, force: true });
  }
  const cpu = readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  const ipv = execFileSync("ip", ["-V"], { encoding: "utf8" }).trim();
  console.log(
    `Machine: ${cpu} × ${cpus().length}, kernel ${release()}, node ${process.version}, ${ipv}\n`,
  );
  console.log(
    "| taps | variant | up ms (median) | down ms (median) | up+down ms (median) | vs bare batch | faster than per-step | reps |",
  );
  console.log("|---:|---|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) console.log(r);
}

if (process.argv[2] === "--child") {
  await child(process.argv[3]!, process.argv[4]!, Number(process.argv[5]), process.argv[6]!);
} else {
  await main();
}
