// Start to ping for the 2-VM private lab (examples/private-lan.yaml): root (`--netns`) against rootless (a
// normal user made for the run, inside a stand-in host namespace), interleaved, warm caches, medians.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const runs = Number(process.argv[process.argv.indexOf("--runs") + 1]) || 5;
const ID = process.pid % 100_000;
// The example under a name of this run: other suites find QEMU by `process=qnet:lab:` and must not touch it.
const LAB = `qnb${ID}`;
const dir = mkdtempSync("/tmp/qnb-rl-lab-");
const FILE = join(dir, "private-lan.yaml");
writeFileSync(
  FILE,
  readFileSync(join(ROOT, "examples", "private-lan.yaml"), "utf8").replace(
    /^name: \S+$/m,
    `name: ${LAB}`,
  ),
  { mode: 0o644 },
);
chmodSync(dir, 0o755);
const USER = `qnbench${ID}`;
const HOST = `qnb-rl-${ID}-host`;
const sh = (argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
const stateRoot = mkdtempSync(join(tmpdir(), "qnb-rl-state-"));

/** A qnet command: as root in the bench namespace, or as the user inside the stand-in host namespace. */
function qnet(mode: "root" | "rootless", args: string[]): number | null {
  const argv =
    mode === "root"
      ? [process.execPath, CLI, args[0]!, "--state-dir", stateRoot, ...args.slice(1)]
      : [
          ...["ip", "netns", "exec", HOST, "setpriv", "--reuid", USER, "--regid", USER],
          ...[
            "--init-groups",
            "env",
            "-i",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            `HOME=/home/${USER}`,
          ],
          ...[process.execPath, CLI, ...args],
        ];
  return spawnSync(argv[0]!, argv.slice(1), { stdio: "ignore", timeout: 300_000, cwd: "/" }).status;
}

/** ms from `qnet up` to vm0's first answered ping to vm1. */
function startToPing(mode: "root" | "rootless"): number {
  const t0 = performance.now();
  const up = qnet(mode, [
    "up",
    FILE,
    "-q",
    ...(mode === "root" ? ["--netns", `qnb-rl-${ID}-lab`] : []),
  ]);
  if (up !== 0) throw new Error(`${mode}: up failed (${up})`);
  for (let i = 0; i < 100; i++) {
    if (qnet(mode, ["exec", LAB, "vm0", "--", "ping", "-c1", "-W1", "10.0.2.3"]) === 0)
      return performance.now() - t0;
  }
  throw new Error(`${mode}: no ping`);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

try {
  sh(["useradd", "--create-home", "--shell", "/bin/sh", USER]);
  sh(["ip", "netns", "add", HOST]);
  sh(["ip", "-n", HOST, "link", "set", "lo", "up"]);
  const times: Record<"root" | "rootless", number[]> = { root: [], rootless: [] };
  // Warm-up: each side builds (or finds) its built-in guest and VM template once, as a user does once.
  for (const mode of ["root", "rootless"] as const) {
    startToPing(mode);
    qnet(mode, ["down", LAB]);
  }
  for (let r = 0; r < runs; r++) {
    const order = r % 2 ? (["rootless", "root"] as const) : (["root", "rootless"] as const);
    for (const mode of order) {
      times[mode].push(startToPing(mode));
      if (qnet(mode, ["down", LAB]) !== 0) throw new Error(`${mode}: down failed`);
    }
  }
  const fmt = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(", ");
  const root = median(times.root);
  const rl = median(times.rootless);
  console.log(
    `runs: ${runs} each, interleaved; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  console.log(`| variant | median start to ping | runs (s) |`);
  console.log(`|---|---|---|`);
  console.log(`| root (\`--netns\`) | ${(root / 1000).toFixed(2)} s | ${fmt(times.root)} |`);
  console.log(
    `| rootless (a normal user) | ${(rl / 1000).toFixed(2)} s | ${fmt(times.rootless)} |`,
  );
  console.log(`rootless / root: ${(rl / root).toFixed(2)}×`);
} finally {
  qnet("root", ["down", LAB]);
  qnet("rootless", ["down", LAB]);
  spawnSync("ip", ["netns", "del", HOST]);
  // The machine's init reaps the user's last zombies a moment after down: userdel refuses until then.
  for (let i = 0; i < 40 && spawnSync("pgrep", ["-u", USER]).status === 0; i++)
    spawnSync("sleep", ["0.2"]);
  const uid = spawnSync("id", ["-u", USER], { encoding: "utf8" }).stdout.trim();
  if (/^\d+$/.test(uid)) rmSync(`/tmp/qnet-${uid}`, { recursive: true, force: true });
  spawnSync("userdel", ["--remove", USER]);
  rmSync(stateRoot, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}
