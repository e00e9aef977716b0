// Stress: N up/down cycles of a two-network lab with VMs, then three labs at once in separate namespaces;
// afterwards the host (links, addresses, routes, nft, ip_forward, processes, state files) equals the snapshot.
// Usage (root): node dist/bench/stress.js [--cycles N]
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostSnapshot, pidsMatching, qnetWith, statusOf } from "../test/e2e/helpers/host-state.js";
import { addNetns, delNetns } from "../test/e2e/helpers/netns.js";
import { CLI } from "../test/helpers/topology.js";

/** Two bridge networks (one with DHCP/NAT), two VMs with a NIC on each. */
export function twoNetLab(name: string, n: number): string {
  return `name: ${name}
networks:
  front: { type: bridge, subnet: 10.${80 + n}.1.0/24, nat: true }
  back: { type: bridge, subnet: 10.${80 + n}.2.0/24 }
vms:
  vm0: { nics: [{ network: front }, { network: back }] }
  vm1: { nics: [{ network: front }, { network: back }] }
`;
}

function runAsync(
  root: string,
  args: string[],
): Promise<{ status: number | null; stderr: string }> {
  return new Promise((res) => {
    const c = spawn(process.execPath, [CLI, args[0]!, "--state-dir", root, ...args.slice(1)]);
    let stderr = "";
    c.stderr.on("data", (d) => (stderr += d));
    c.on("close", (status) => res({ status, stderr }));
  });
}

export interface StressResult {
  cycles: number;
  cycleSeconds: number[];
  labsAtOnce: number;
  parallelSeconds: number;
}

export async function stress(
  cycles: number,
  labsAtOnce = 3,
  log = console.log,
): Promise<StressResult> {
  const tag = `qnt-stress-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), "qnet-stress-"));
  const files = mkdtempSync(join(tmpdir(), "qnet-stress-files-"));
  const namespaces = Array.from({ length: labsAtOnce }, (_, i) => `${tag}-${i}`);
  const hostBefore = hostSnapshot(null);
  const result: StressResult = { cycles: 0, cycleSeconds: [], labsAtOnce, parallelSeconds: 0 };
  try {
    for (const ns of namespaces) addNetns(ns);
    const before = namespaces.map((ns) => hostSnapshot(ns));
    const labs = namespaces.map((_, i) => {
      const f = join(files, `s${i}.yaml`);
      writeFileSync(f, twoNetLab(`stress${i}`, i));
      return f;
    });

    for (let c = 1; c <= cycles; c++) {
      const t0 = performance.now();
      const up = qnetWith(root, ["up", labs[0]!, "--netns", namespaces[0]!]);
      assert.equal(up.status, 0, `cycle ${c}: up failed: ${up.stderr}`);
      const st = statusOf(root, "stress0");
      assert.equal(st.ok, true, `cycle ${c}: status not ok`);
      const down = qnetWith(root, ["down", "stress0"]);
      assert.equal(down.status, 0, `cycle ${c}: down failed: ${down.stderr}`);
      assert.deepEqual(hostSnapshot(namespaces[0]!), before[0], `cycle ${c}: namespace differs`);
      assert.deepEqual(readdirSync(root), [], `cycle ${c}: state files left`);
      const s = (performance.now() - t0) / 1000;
      result.cycleSeconds.push(s);
      result.cycles = c;
      log(`cycle ${c}/${cycles}: up+status+down ${s.toFixed(1)} s`);
    }

    const t0 = performance.now();
    const ups = await Promise.all(
      labs.map((f, i) => runAsync(root, ["up", f, "--netns", namespaces[i]!])),
    );
    ups.forEach((r, i) => {
      assert.equal(r.status, 0, `lab ${i}: ${r.stderr}`);
    });
    for (let i = 0; i < labsAtOnce; i++)
      assert.equal(statusOf(root, `stress${i}`).ok, true, `lab stress${i} not healthy`);
    const downs = await Promise.all(labs.map((_, i) => runAsync(root, ["down", `stress${i}`])));
    downs.forEach((r, i) => {
      assert.equal(r.status, 0, `down ${i}: ${r.stderr}`);
    });
    result.parallelSeconds = (performance.now() - t0) / 1000;
    log(`${labsAtOnce} labs up at once, healthy, down: ${result.parallelSeconds.toFixed(1)} s`);
    namespaces.forEach((ns, i) => {
      assert.deepEqual(hostSnapshot(ns), before[i], `${ns} differs`);
    });
    assert.deepEqual(readdirSync(root), [], "state files left");
    assert.deepEqual(pidsMatching(`${root}/`), [], "processes left");
  } finally {
    for (let i = 0; i < labsAtOnce; i++) qnetWith(root, ["down", `stress${i}`]);
    for (const ns of namespaces) delNetns(ns);
    rmSync(root, { recursive: true, force: true });
    rmSync(files, { recursive: true, force: true });
  }
  // The machine's own namespace was never touched.
  assert.deepEqual(hostSnapshot(null), hostBefore, "the host namespace changed");
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--cycles");
  const cycles = i > 0 ? Number(process.argv[i + 1]) : 20;
  const t0 = performance.now();
  const r = await stress(cycles);
  const sorted = [...r.cycleSeconds].sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      cycles: r.cycles,
      cycleMedianSeconds: Number(sorted[Math.floor(sorted.length / 2)]!.toFixed(2)),
      labsAtOnce: r.labsAtOnce,
      parallelSeconds: Number(r.parallelSeconds.toFixed(2)),
      totalSeconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
    }),
  );
}
