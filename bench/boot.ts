// Benchmark: time from start to every VM ready and having pinged each of its peers (N VMs on one private
// network), then the teardown: qnet (instant start from a template, and --cold) vs the seed's manual steps
// (bench/baselines/manual.sh) vs libvirt, interleaved.
// Run as root: node dist/bench/boot.js [--runs 5] [--sizes 2,8] [--variants qnet,qnet-cold,manual,libvirt]
// Everything runs in fresh network namespaces; libvirtd itself is started inside one (its network too).
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { BASE_CMDLINE, READY_PREFIX } from "../src/guest/init-script.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const MANUAL = join(ROOT, "bench", "baselines", "manual.sh");
const ID = process.pid;

type Variant = "qnet" | "qnet-cold" | "qnet-e1000" | "manual" | "libvirt";
const DEFAULT: Variant[] = ["qnet", "qnet-cold", "manual", "libvirt"];
/** One run: start to all pinging, and the teardown after it (ms). */
type Times = { up: number; down: number };

function opt(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}
if (process.argv.includes("--help")) {
  console.log(
    "usage: node dist/bench/boot.js [--runs N] [--sizes 2,8] [--variants qnet,qnet-cold,qnet-e1000,manual,libvirt]",
  );
  process.exit(0);
}
const RUNS = Number(opt("runs", "5"));
const SIZES = opt("sizes", "2,8").split(",").map(Number);
const VARIANTS = opt("variants", DEFAULT.join(",")).split(",") as Variant[];
const MAX_VMS = Math.max(...SIZES);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ipOf = (i: number) => `10.0.2.${i + 2}`;
const macOf = (i: number) => `52:54:00:12:34:${(0x56 + i).toString(16).padStart(2, "0")}`;
const peersOf = (i: number, n: number) =>
  Array.from({ length: n }, (_, j) => j)
    .filter((j) => j !== i)
    .map(ipOf);
/**
 * The guest command every variant runs in each VM: ping each peer until it answers (up to 15 tries of
 * 1 s: an e1000 link gets carrier a moment after the guest reports ready), fail if one never does.
 */
const pingScript = (i: number, n: number) =>
  `for p in ${peersOf(i, n).join(" ")}; do n=0; until ping -c1 -W1 $p >/dev/null; do n=$((n+1)); [ $n -lt 15 ] || exit 1; done; done`;

async function run(argv: string[], what: string): Promise<string> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, env: { LC_ALL: "C" } });
  if (r.exitCode !== 0) {
    throw new Error(`${what}: ${argv.join(" ")} exited ${r.exitCode}\n${r.stderr}\n${r.stdout}`);
  }
  return r.stdout;
}
const qnet = (args: string[], what: string) => run([process.execPath, CLI, ...args], what);

// ---------- qnet ----------

function topology(n: number, model: string): string {
  const vms = Array.from(
    { length: n },
    (_, i) =>
      `  vm${i}: { nics: [{ network: lan, ip: ${ipOf(i)}, mac: "${macOf(i)}", model: ${model} }] }`,
  );
  return [
    "name: bootbench",
    "networks:",
    "  lan: { type: bridge, subnet: 10.0.2.0/24, gateway: 10.0.2.1, dhcp: false }",
    "vms:",
    ...vms,
    "",
  ].join("\n");
}

async function qnetOnce(n: number, model: string, cold: boolean): Promise<Times> {
  const ns = `qnt-boot-${ID}-q`;
  const dir = mkdtempSync(join(tmpdir(), "qnt-boot-q-"));
  const file = join(dir, "lab.yaml");
  writeFileSync(file, topology(n, model));
  const state = join(dir, "state");
  await run(["ip", "netns", "add", ns], "netns");
  let up = Number.NaN;
  let down = Number.NaN;
  try {
    const t0 = performance.now();
    const mode = cold ? ["--cold"] : [];
    await qnet(["up", file, "--netns", ns, "--state-dir", state, "-q", ...mode], "qnet up");
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        qnet(
          ["exec", "bootbench", `vm${i}`, "--state-dir", state, "--", "sh", "-c", pingScript(i, n)],
          `qnet exec vm${i}`,
        ),
      ),
    );
    up = performance.now() - t0;
  } finally {
    const t1 = performance.now();
    await qnet(["down", "bootbench", "--state-dir", state], "qnet down").then(
      () => (down = performance.now() - t1),
      (e) => console.error(String(e)),
    );
    await run(["ip", "netns", "del", ns], "netns del").catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  return { up, down };
}

// ---------- manual (the seed's steps in a shell script) ----------

async function manualOnce(n: number, kernel: string, initrd: string): Promise<Times> {
  const ns = `qnt-boot-${ID}-m`;
  const dir = mkdtempSync(join(tmpdir(), "qnt-boot-m-"));
  await run(["ip", "netns", "add", ns], "netns");
  let up = Number.NaN;
  let down = Number.NaN;
  try {
    const t0 = performance.now();
    await run(
      [
        "ip",
        "netns",
        "exec",
        ns,
        "bash",
        MANUAL,
        "up",
        String(n),
        dir,
        kernel,
        initrd,
        BASE_CMDLINE.join(" "),
      ],
      "manual.sh up",
    );
    up = performance.now() - t0;
  } finally {
    const t1 = performance.now();
    await run(
      ["ip", "netns", "exec", ns, "bash", MANUAL, "down", String(n), dir],
      "manual down",
    ).then(
      () => (down = performance.now() - t1),
      (e) => console.error(String(e)),
    );
    await run(["ip", "netns", "del", ns], "netns del").catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  return { up, down };
}

// ---------- libvirt ----------

const LV_NS = `qnt-boot-${ID}-lv`;
const LV_DIR = `/tmp/qnt-boot-${ID}-lv`;
const LV_BOOT = "/var/lib/libvirt/boot";
const LV_NET = "qnbench";
const virsh = (args: string[], what: string) =>
  run(["virsh", "-q", "-c", "qemu:///system", ...args], what);
const lvSerial = (i: number) => join(LV_DIR, `vm${i}.serial`);

function domainXml(i: number): string {
  const cmdline = `${BASE_CMDLINE.join(" ")} qnet.hostname=vm${i} qnet.nic0=${macOf(i)},${ipOf(i)}/24,10.0.2.1`;
  return `<domain type='qemu'>
  <name>qnbench-vm${i}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>${LV_BOOT}/qnbench-vmlinux</kernel>
    <initrd>${LV_BOOT}/qnbench-initrd.img</initrd>
    <cmdline>${cmdline}</cmdline>
  </os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <interface type='network'>
      <source network='${LV_NET}'/>
      <mac address='${macOf(i)}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'><source path='${lvSerial(i)}'/><target port='0'/></serial>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
  </devices>
</domain>
`;
}

/** Start virtlogd and libvirtd inside a namespace of their own, define an isolated network and domains. */
async function libvirtSetup(kernel: string, initrd: string): Promise<void> {
  const ps = await execa("ps", ["-C", "libvirtd", "-o", "pid=,stat="], { reject: false });
  const others = ps.stdout.split("\n").filter((l) => l.trim() && !/\sZ/.test(l));
  if (others.length > 0) throw new Error(`a libvirtd is already running: ${others.join(", ")}`);
  mkdirSync(LV_DIR, { recursive: true });
  mkdirSync(LV_BOOT, { recursive: true });
  copyFileSync(kernel, `${LV_BOOT}/qnbench-vmlinux`);
  copyFileSync(initrd, `${LV_BOOT}/qnbench-initrd.img`);
  await run(["ip", "netns", "add", LV_NS], "netns");
  await run(
    ["ip", "netns", "exec", LV_NS, "virtlogd", "-d", "-p", join(LV_DIR, "virtlogd.pid")],
    "virtlogd",
  );
  await run(
    ["ip", "netns", "exec", LV_NS, "libvirtd", "-d", "-p", join(LV_DIR, "libvirtd.pid")],
    "libvirtd",
  );
  for (let t = 0; ; t++) {
    const r = await execa("virsh", ["-q", "-c", "qemu:///system", "version"], { reject: false });
    if (r.exitCode === 0) break;
    if (t > 100) throw new Error(`libvirtd does not answer: ${r.stderr}`);
    await sleep(100);
  }
  const netXml = join(LV_DIR, "net.xml");
  writeFileSync(
    netXml,
    `<network>\n  <name>${LV_NET}</name>\n  <bridge name='qnbench0' stp='off' delay='0'/>\n  <ip address='10.0.2.1' netmask='255.255.255.0'/>\n</network>\n`,
  );
  await virsh(["net-define", netXml], "net-define");
  for (let i = 0; i < MAX_VMS; i++) {
    const f = join(LV_DIR, `vm${i}.xml`);
    writeFileSync(f, domainXml(i));
    await virsh(["define", f], "define");
  }
}

async function libvirtTeardown(): Promise<void> {
  const quiet = (args: string[]) =>
    execa("virsh", ["-q", "-c", "qemu:///system", ...args], { reject: false });
  for (let i = 0; i < MAX_VMS; i++) {
    await quiet(["destroy", `qnbench-vm${i}`]);
    await quiet(["undefine", `qnbench-vm${i}`]);
  }
  await quiet(["net-destroy", LV_NET]);
  await quiet(["net-undefine", LV_NET]);
  for (const d of ["libvirtd", "virtlogd"]) {
    const pidFile = join(LV_DIR, `${d}.pid`);
    if (!existsSync(pidFile)) continue;
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    if (pid > 1) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {}
      for (let t = 0; t < 50; t++) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        await sleep(100);
      }
    }
  }
  await execa("ip", ["netns", "del", LV_NS], { reject: false });
  rmSync(LV_DIR, { recursive: true, force: true });
  rmSync(`${LV_BOOT}/qnbench-vmlinux`, { force: true });
  rmSync(`${LV_BOOT}/qnbench-initrd.img`, { force: true });
}

/** Run a command through the guest agent (guest-exec, then guest-exec-status until it exits). */
async function agentExec(dom: string, script: string): Promise<void> {
  const cmd = JSON.stringify({
    execute: "guest-exec",
    arguments: { path: "/bin/sh", arg: ["-c", script], "capture-output": true },
  });
  let pid: number | null = null;
  for (let t = 0; pid === null; t++) {
    // The agent may not be connected yet right after the ready line: retry.
    const r = await execa("virsh", ["-q", "-c", "qemu:///system", "qemu-agent-command", dom, cmd], {
      reject: false,
    });
    if (r.exitCode === 0) pid = JSON.parse(r.stdout).return.pid as number;
    else if (t > 600) throw new Error(`${dom}: guest agent never answered: ${r.stderr}`);
    else await sleep(50);
  }
  const status = JSON.stringify({ execute: "guest-exec-status", arguments: { pid } });
  for (let t = 0; t < 600; t++) {
    const out = await virsh(["qemu-agent-command", dom, status], "guest-exec-status");
    const s = JSON.parse(out).return as { exited: boolean; exitcode?: number };
    if (s.exited) {
      if (s.exitcode !== 0) throw new Error(`${dom}: pings failed (exit ${s.exitcode})`);
      return;
    }
    await sleep(50);
  }
  throw new Error(`${dom}: pings did not finish`);
}

async function waitReady(file: string, name: string, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  const want = `${READY_PREFIX} ${name}`;
  while (performance.now() < end) {
    if (existsSync(file) && readFileSync(file, "utf8").includes(want)) return;
    await sleep(50);
  }
  throw new Error(`${name}: no ready line in ${file}`);
}

async function libvirtOnce(n: number): Promise<Times> {
  for (let i = 0; i < n; i++) rmSync(lvSerial(i), { force: true });
  let up = Number.NaN;
  let down = Number.NaN;
  try {
    const t0 = performance.now();
    await virsh(["net-start", LV_NET], "net-start");
    // One after the other, as a user typing `virsh start` per domain would.
    for (let i = 0; i < n; i++) await virsh(["start", `qnbench-vm${i}`], "start");
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        await waitReady(lvSerial(i), `vm${i}`, 120_000);
        await agentExec(`qnbench-vm${i}`, pingScript(i, n));
      }),
    );
    up = performance.now() - t0;
  } finally {
    // As a user would type it: `virsh destroy` per domain, then the network.
    const t1 = performance.now();
    for (let i = 0; i < n; i++) {
      await execa("virsh", ["-q", "-c", "qemu:///system", "destroy", `qnbench-vm${i}`], {
        reject: false,
      });
    }
    await execa("virsh", ["-q", "-c", "qemu:///system", "net-destroy", LV_NET], { reject: false });
    down = performance.now() - t1;
  }
  return { up, down };
}

// ---------- driver ----------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function machine(): Promise<string> {
  const model = cpus()[0]?.model ?? "?";
  const qemu = (await run(["qemu-system-x86_64", "--version"], "qemu")).split("\n")[0];
  const lv = VARIANTS.includes("libvirt")
    ? `, ${(await run(["libvirtd", "--version"], "libvirtd")).trim()}`
    : "";
  return `${model} × ${cpus().length}, kernel ${release()}, node ${process.version}, ${qemu}${lv}, accel TCG (PVM KVM cannot boot stock kernels)`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root");
  const built = JSON.parse(
    await qnet(["guest", "build", "--model", "e1000", "virtio-net-pci", "--json"], "guest build"),
  ) as { kernel: string; initrd: string };
  const loads: number[] = [];
  const sampler = setInterval(() => loads.push(loadavg()[0]!), 2000);
  const times = new Map<string, Times[]>();
  let lvUp = false;
  try {
    if (VARIANTS.includes("libvirt")) {
      await libvirtSetup(built.kernel, built.initrd);
      lvUp = true;
    }
    if (VARIANTS.includes("qnet")) {
      // Untimed: the first instant start builds the template (cached in ~/.cache/qnet/templates).
      const w = await qnetOnce(2, "virtio-net-pci", false);
      console.error(`warm-up (template built): ${Math.round(w.up)} ms`);
    }
    for (let r = 0; r < RUNS; r++) {
      for (const n of SIZES) {
        // Interleaved: the variant order rotates every run, so drifting load hits all of them alike.
        const order = VARIANTS.map((_, k) => VARIANTS[(k + r) % VARIANTS.length]!);
        for (const v of order) {
          const t =
            v === "qnet" || v === "qnet-cold"
              ? await qnetOnce(n, "virtio-net-pci", v === "qnet-cold")
              : v === "qnet-e1000"
                ? await qnetOnce(n, "e1000", true)
                : v === "manual"
                  ? await manualOnce(n, built.kernel, built.initrd)
                  : await libvirtOnce(n);
          const key = `${n}/${v}`;
          times.set(key, [...(times.get(key) ?? []), t]);
          console.error(
            `run ${r + 1}/${RUNS} vms=${n} ${v}: up ${Math.round(t.up)} ms, down ${Math.round(t.down)} ms (load ${loadavg()[0]!.toFixed(2)})`,
          );
        }
      }
    }
  } finally {
    clearInterval(sampler);
    if (lvUp || VARIANTS.includes("libvirt")) await libvirtTeardown();
  }
  const ls = [...loads].sort((a, b) => a - b);
  console.log(`Machine: ${await machine()}`);
  console.log(
    `Load average (1 min) during the run: min ${ls[0]?.toFixed(2)}, median ${median(ls).toFixed(2)}, max ${ls.at(-1)?.toFixed(2)} (machine shared with other sessions)`,
  );
  const first = VARIANTS[0]!;
  for (const phase of ["up", "down"] as const) {
    console.log("");
    console.log(
      phase === "up"
        ? "Start to every VM pinging its peers:"
        : "Teardown (everything the run made removed, VMs stopped):",
    );
    console.log(
      `| VMs | variant | median ms | min ms | max ms | runs | ${first} ÷ this (median) |\n|---:|---|---:|---:|---:|---:|---:|`,
    );
    for (const n of SIZES) {
      const base = median((times.get(`${n}/${first}`) ?? []).map((t) => t[phase]));
      for (const v of VARIANTS) {
        const xs = (times.get(`${n}/${v}`) ?? []).map((t) => t[phase]);
        const m = median(xs);
        console.log(
          `| ${n} | ${v} | ${Math.round(m)} | ${Math.round(Math.min(...xs))} | ${Math.round(Math.max(...xs))} | ${xs.length} | ${(base / m).toFixed(2)}× |`,
        );
      }
    }
  }
  console.log("");
  const raw = [...times].map(([k, ts]) => [
    k,
    ts.map((t) => [Math.round(t.up), Math.round(t.down)]),
  ]);
  console.log(`Raw [up, down] ms: ${JSON.stringify(Object.fromEntries(raw))}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
