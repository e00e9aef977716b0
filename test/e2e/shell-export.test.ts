// `qnet export shell` for real: the script of examples/private-lan.yaml, run by plain sh inside a fresh
// namespace (no qnet involved), makes the bridge, taps and dnsmasq, boots both VMs, and they ping each other.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { buildGuest } from "../../src/guest/build.js";
import { GuestAgent, waitForAgent } from "../../src/host/guest-agent.js";
import { REPO_ROOT } from "../helpers/golden.js";
import { runCli } from "../helpers/topology.js";
import { addNetns, delNetns } from "./helpers/netns.js";

const NS = `qnt-sh-${process.pid}`;
const ROOT = mkdtempSync(join(tmpdir(), "qnet-shell-export-"));
const STATE = join(ROOT, "lab");

function pidFrom(file: string): number {
  return existsSync(file) ? Number(readFileSync(file, "utf8").trim()) : 0;
}

after(() => {
  // Read every pidfile first: QEMU removes its own when it exits.
  const pids = ["vm/vm0.pid", "vm/vm1.pid", "dnsmasq-lan.pid"].map((f) => pidFrom(join(STATE, f)));
  for (const pid of pids) {
    if (pid > 1)
      try {
        process.kill(pid, "SIGTERM");
      } catch {}
  }
  for (const pid of pids) {
    for (let i = 0; pid > 1 && i < 50; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      spawnSync("sleep", ["0.1"]);
    }
  }
  delNetns(NS);
  rmSync(ROOT, { recursive: true, force: true });
});

test("the exported script of examples/private-lan.yaml runs with sh alone: VMs get their leases and ping each other", async () => {
  const guest = await buildGuest({ nicModels: ["virtio-net-pci"] });
  const r = runCli([
    "export",
    "shell",
    join(REPO_ROOT, "examples", "private-lan.yaml"),
    "--state-dir",
    ROOT,
  ]);
  assert.equal(r.status, 0, r.stderr);
  const script = join(ROOT, "lab.sh");
  writeFileSync(script, r.stdout);
  addNetns(NS);
  const t0 = performance.now();
  const run = spawnSync("ip", ["netns", "exec", NS, "sh", script], {
    encoding: "utf8",
    env: { ...process.env, QNET_GUEST_KERNEL: guest.kernel, QNET_GUEST_INITRD: guest.initrd },
  });
  assert.equal(run.status, 0, `${run.stderr}${run.stdout}`);
  const links = JSON.parse(
    execFileSync("ip", ["-n", NS, "-json", "addr", "show", "dev", "br0"], { encoding: "utf8" }),
  );
  assert.equal(
    links[0].addr_info.find((a: { family: string }) => a.family === "inet")?.local,
    "10.0.2.1",
  );
  const ping = async (vm: string, peer: string, self: string) => {
    const qga = join(STATE, "vm", `${vm}.qga`);
    await waitForAgent(qga, { timeoutMs: 120_000, intervalMs: 200 });
    const agent = await GuestAgent.connect(qga, { timeoutMs: 10_000 });
    try {
      const res = await agent.exec(
        [
          "/bin/sh",
          "-c",
          `for i in $(seq 30); do ping -c1 -W1 ${peer} >/dev/null && ip -4 -o addr && exit 0; done; exit 1`,
        ],
        { timeoutMs: 60_000 },
      );
      assert.equal(res.exitCode, 0, `${vm} could not ping ${peer}: ${res.stdout}${res.stderr}`);
      assert.match(res.stdout.toString(), new RegExp(`inet ${self.replaceAll(".", "\\.")}/24`));
    } finally {
      agent.close();
    }
  };
  await Promise.all([ping("vm0", "10.0.2.3", "10.0.2.2"), ping("vm1", "10.0.2.2", "10.0.2.3")]);
  console.log(
    `# shell export e2e: ${Math.round(performance.now() - t0)} ms from the script's start to both pings`,
  );
});
