// Benchmark of the web view: page load to a drawn topology (N-VM labs, from a file and from a lab up with
// --no-vms), and the memory of the `qnet ui` process with 10 serial consoles open. Root for the lab parts;
// everything runs in throwaway namespaces and on loopback, in Debian's Chromium (playwright-core).
// Usage: node dist/bench/ui.js [--runs 5] [--sizes 10,100,300] [--consoles 10] [--skip-memory] [--skip-load]

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import type { Page } from "playwright-core";
import { launchBrowser, startUi, type UiProcess } from "../test/e2e/helpers/browser.js";
import { addNetns, delNetns } from "../test/e2e/helpers/netns.js";
import { CLI } from "../test/helpers/topology.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    sizes: { type: "string", default: "10,100,300" },
    consoles: { type: "string", default: "10" },
    "skip-memory": { type: "boolean", default: false },
    "skip-load": { type: "boolean", default: false },
  },
});
const RUNS = Number(values.runs);
const SIZES = values.sizes!.split(",").map(Number);
const CONSOLES = Number(values.consoles);
const ID = process.pid;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function topologyText(name: string, vms: number, subnet: string): string {
  const lines = Array.from({ length: vms }, (_, i) => `  vm${i}: { nics: [{ network: lan }] }`);
  return `name: ${name}\nnetworks:\n  lan: { type: bridge, subnet: ${subnet} }\nvms:\n${lines.join("\n")}\n`;
}

function qnet(stateDir: string, args: string[]) {
  return execa(process.execPath, [CLI, args[0]!, "--state-dir", stateDir, ...args.slice(1)], {
    reject: false,
  });
}

/** Milliseconds from navigation start to the page's marks, in a fresh browser (cold profile). */
async function loadOnce(url: string): Promise<{ drawn: number; fetched: number; nodes: number }> {
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    await page.goto(url);
    await page.waitForSelector("body[data-drawn]", { timeout: 120_000 });
    return await page.evaluate(() => ({
      drawn: performance.getEntriesByName("qnet:topology-drawn")[0]!.startTime,
      fetched: performance.getEntriesByName("qnet:topology-fetched")[0]!.startTime,
      nodes: Number(document.body.dataset.drawn),
    }));
  } finally {
    await browser.close();
  }
}

async function stopUi(ui: UiProcess): Promise<void> {
  ui.child.kill("SIGINT");
  await ui.exited;
}

interface LoadRow {
  vms: number;
  source: string;
  nodes: number;
  drawn: number[];
  fetched: number[];
}

async function pageLoads(): Promise<LoadRow[]> {
  const rows: LoadRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), "qnet-bench-ui-"));
  try {
    for (const n of SIZES) {
      const file = join(dir, `ui${n}.yaml`);
      writeFileSync(file, topologyText(`ui${n}`, n, "10.90.0.0/16"));
      const ui = await startUi([file]);
      const row: LoadRow = { vms: n, source: "file", nodes: 0, drawn: [], fetched: [] };
      try {
        for (let r = 0; r < RUNS; r++) {
          const m = await loadOnce(ui.url);
          row.drawn.push(m.drawn);
          row.fetched.push(m.fetched);
          row.nodes = m.nodes;
          process.stderr.write(`  file ${n} VMs run ${r + 1}: ${m.drawn.toFixed(0)} ms\n`);
        }
      } finally {
        await stopUi(ui);
      }
      rows.push(row);
    }
    // A lab up with --no-vms (bridge and 100 taps in a namespace): the same page, with live state.
    const n = 100;
    const ns = `qnt-bui-${ID}`;
    const state = join(dir, "state");
    const file = join(dir, "live.yaml");
    writeFileSync(file, topologyText("uilive", n, "10.91.0.0/16"));
    addNetns(ns);
    try {
      const up = await qnet(state, ["up", file, "--netns", ns, "--no-vms", "-q"]);
      if (up.exitCode !== 0) throw new Error(`up failed: ${up.stderr}`);
      const ui = await startUi(["uilive", "--state-dir", state]);
      const row: LoadRow = { vms: n, source: "lab up --no-vms", nodes: 0, drawn: [], fetched: [] };
      try {
        for (let r = 0; r < RUNS; r++) {
          const m = await loadOnce(ui.url);
          row.drawn.push(m.drawn);
          row.fetched.push(m.fetched);
          row.nodes = m.nodes;
          process.stderr.write(`  live ${n} VMs run ${r + 1}: ${m.drawn.toFixed(0)} ms\n`);
        }
      } finally {
        await stopUi(ui);
      }
      rows.push(row);
    } finally {
      await qnet(state, ["down", "uilive"]);
      delNetns(ns);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/** Resident and peak memory of a process, in MiB. */
function memory(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

async function consoleMemory(): Promise<{ stage: string; rss: number; hwm: number }[]> {
  const out: { stage: string; rss: number; hwm: number }[] = [];
  const dir = mkdtempSync(join(tmpdir(), "qnet-bench-uimem-"));
  const ns = `qnt-bum-${ID}`;
  const state = join(dir, "state");
  const file = join(dir, "mem.yaml");
  writeFileSync(
    file,
    topologyText("uimem", CONSOLES, "10.92.0.0/24").replaceAll(
      "{ nics: [{ network: lan }] }",
      "{ memory: 128, nics: [{ network: lan }] }",
    ),
  );
  addNetns(ns);
  const browser = await launchBrowser({ width: 1400, height: 900 });
  let ui: UiProcess | null = null;
  try {
    const t0 = Date.now();
    const up = await qnet(state, ["up", file, "--netns", ns, "-q", "--wait", "300"]);
    if (up.exitCode !== 0) throw new Error(`up failed: ${up.stderr}`);
    process.stderr.write(`  ${CONSOLES} VMs up in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    ui = await startUi(["uimem", "--state-dir", state]);
    const pid = ui.child.pid!;
    await sleep(2000);
    out.push({ stage: "started, no page", ...memory(pid) });
    const page: Page = await browser.context.newPage();
    await page.goto(ui.url);
    await page.waitForSelector("body[data-drawn]");
    await page.waitForSelector(`tr[data-key="vm:vm${CONSOLES - 1}"][data-state="present"]`, {
      timeout: 30_000,
    });
    await sleep(5000);
    out.push({ stage: "page open (state pushed every 1 s)", ...memory(pid) });
    for (let i = 0; i < CONSOLES; i++) {
      await page.click(`button[data-console="vm${i}"]`);
      await page.waitForSelector(`[data-console-vm="vm${i}"][data-writer="yes"]`);
    }
    await sleep(5000);
    out.push({ stage: `${CONSOLES} consoles open`, ...memory(pid) });
    // Output through every console, twice: each VM prints 2,000 lines (about 60 KB) per round.
    for (const round of [1, 2]) {
      for (let i = 0; i < CONSOLES; i++) {
        await page.click(`button[data-console-tab="vm${i}"]`);
        await page.locator(`[data-console-vm="vm${i}"] .xterm`).click();
        await page.keyboard.type(
          `i=0; while [ $i -lt 2000 ]; do echo line $i of the benchmark; i=$((i+1)); done; echo DONE-$((${round}+1000))\n`,
        );
      }
      for (let i = 0; i < CONSOLES; i++) {
        await page.click(`button[data-console-tab="vm${i}"]`);
        await page.waitForFunction(
          ([vm, mark]) =>
            document
              .querySelector(`[data-console-vm="${vm}"] .xterm-rows`)
              ?.textContent?.includes(mark!),
          [`vm${i}`, `DONE-${round + 1000}`],
          { timeout: 120_000 },
        );
      }
      await sleep(5000);
      out.push({
        stage: `${CONSOLES} consoles open, after ${round * 600} KB of console output in all`,
        ...memory(pid),
      });
    }
    await page.close();
    await sleep(5000);
    out.push({ stage: "page closed again", ...memory(pid) });
  } finally {
    if (ui) await stopUi(ui);
    await browser.close();
    await qnet(state, ["down", "uimem"]);
    delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

async function machine(): Promise<string> {
  const chromium = (await execa("/usr/bin/chromium", ["--version"], { reject: false })).stdout;
  const cpu = cpus()[0]?.model ?? "?";
  return `${cpu} × ${cpus().length}, kernel ${release()}, node ${process.version}, ${chromium.trim()}`;
}

const loads: number[] = [];
const sampler = setInterval(() => loads.push(loadavg()[0]!), 2000);
console.log(`Machine: ${await machine()}`);
const rows = values["skip-load"] ? [] : await pageLoads();
if (rows.length) {
  console.log(
    `\n| VMs | source | graph nodes | navigation → topology fetched, median ms | navigation → topology drawn, median ms | min | max | runs |\n|---:|---|---:|---:|---:|---:|---:|---:|`,
  );
  for (const r of rows)
    console.log(
      `| ${r.vms} | ${r.source} | ${r.nodes} | ${median(r.fetched).toFixed(0)} | ${median(r.drawn).toFixed(0)} | ${Math.min(...r.drawn).toFixed(0)} | ${Math.max(...r.drawn).toFixed(0)} | ${r.drawn.length} |`,
    );
  console.log(
    `\nRaw ms (drawn): ${JSON.stringify(Object.fromEntries(rows.map((r) => [`${r.vms}/${r.source}`, r.drawn.map((x) => Math.round(x))])))}`,
  );
}
if (!values["skip-memory"]) {
  const mem = await consoleMemory();
  console.log(`\n| qnet ui process | RSS MiB | peak RSS MiB |\n|---|---:|---:|`);
  for (const m of mem) console.log(`| ${m.stage} | ${m.rss.toFixed(1)} | ${m.hwm.toFixed(1)} |`);
}
clearInterval(sampler);
const ls = loads.sort((a, b) => a - b);
console.log(
  `\nLoad average (1 min) during the run: min ${ls[0]?.toFixed(2)}, median ${median(ls).toFixed(2)}, max ${ls.at(-1)?.toFixed(2)}`,
);
