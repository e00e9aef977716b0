// `qnet export libvirt` for real: libvirt 9 (libvirtd started by hand inside a namespace of its own, as
// bench/boot.ts does) defines and starts the exported network and domains of examples/private-lan.yaml,
// both VMs boot the built-in guest, get their addresses from libvirt's DHCP and ping each other.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { REPO_ROOT } from "../helpers/golden.js";
import { runCli } from "../helpers/topology.js";
import { addNetns, delNetns } from "./helpers/netns.js";

const ID = process.pid;
const NS = `qnt-lv-${ID}`;
const DIR = mkdtempSync(join(tmpdir(), "qnet-libvirt-"));
const BOOT = "/var/lib/libvirt/boot";
const LAB = "lab";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function virsh(args: string[], check = true) {
  const r = spawnSync("virsh", ["-q", "-c", "qemu:///system", ...args], { encoding: "utf8" });
  if (check && r.status !== 0)
    throw new Error(`virsh ${args.join(" ")} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r;
}

const pidOf = (name: string) => {
  const f = join(DIR, `${name}.pid`);
  return existsSync(f) ? Number(readFileSync(f, "utf8").trim()) : 0;
};

/** Networks our libvirtd started by itself (autostart, e.g. Debian's "default"), to stop at the end. */
let autostarted: string[] = [];
let t0 = 0;

before(() => {
  const ps = spawnSync("ps", ["-C", "libvirtd", "-o", "pid=,stat="], { encoding: "utf8" });
  const running = ps.stdout.split("\n").filter((l) => l.trim() && !/\sZ/.test(l));
  assert.equal(running.length, 0, `a libvirtd is already running: ${running.join(", ")}`);
  t0 = performance.now();
  addNetns(NS);
  execFileSync("ip", ["netns", "exec", NS, "virtlogd", "-d", "-p", join(DIR, "virtlogd.pid")]);
  execFileSync("ip", ["netns", "exec", NS, "libvirtd", "-d", "-p", join(DIR, "libvirtd.pid")]);
});

after(() => {
  for (const vm of ["vm0", "vm1"]) {
    virsh(["destroy", `${LAB}.${vm}`], false);
    virsh(["undefine", `${LAB}.${vm}`], false);
  }
  virsh(["net-destroy", `${LAB}.lan`], false);
  virsh(["net-undefine", `${LAB}.lan`], false);
  for (const n of autostarted) virsh(["net-destroy", n], false);
  for (const d of ["libvirtd", "virtlogd"]) {
    const pid = pidOf(d);
    if (pid > 1) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {}
      for (let i = 0; i < 50; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        spawnSync("sleep", ["0.1"]);
      }
    }
  }
  delNetns(NS);
  for (const f of readdirSync(BOOT)) if (f.startsWith(`qnet-${LAB}-`)) rmSync(join(BOOT, f));
  rmSync(DIR, { recursive: true, force: true });
  console.log(
    `# libvirt e2e: ${Math.round(performance.now() - t0)} ms from libvirtd start to teardown`,
  );
});

/** Run a command in a guest through the agent (guest-exec, then guest-exec-status until it exits). */
async function agentExec(dom: string, script: string): Promise<{ code: number; out: string }> {
  const cmd = JSON.stringify({
    execute: "guest-exec",
    arguments: { path: "/bin/sh", arg: ["-c", script], "capture-output": true },
  });
  let pid: number | null = null;
  for (let t = 0; pid === null; t++) {
    const r = virsh(["qemu-agent-command", dom, cmd], false);
    if (r.status === 0) pid = JSON.parse(r.stdout).return.pid as number;
    else if (t > 1200) throw new Error(`${dom}: the guest agent never answered: ${r.stderr}`);
    else await sleep(100);
  }
  const status = JSON.stringify({ execute: "guest-exec-status", arguments: { pid } });
  for (let t = 0; t < 600; t++) {
    const s = JSON.parse(virsh(["qemu-agent-command", dom, status]).stdout).return as {
      exited: boolean;
      exitcode?: number;
      "out-data"?: string;
    };
    if (s.exited)
      return {
        code: s.exitcode ?? -1,
        out: Buffer.from(s["out-data"] ?? "", "base64").toString(),
      };
    await sleep(100);
  }
  throw new Error(`${dom}: the command did not finish`);
}

test("the exported XML of examples/private-lan.yaml runs under libvirt: both VMs boot and ping each other", async () => {
  // libvirtd answers once its socket is up.
  for (let t = 0; ; t++) {
    if (virsh(["version"], false).status === 0) break;
    if (t > 100) throw new Error("libvirtd does not answer");
    await sleep(100);
  }
  autostarted = virsh(["net-list", "--name"])
    .stdout.split("\n")
    .filter((l) => l.trim());
  const out = join(DIR, "xml");
  const exp = runCli([
    "export",
    "libvirt",
    join(REPO_ROOT, "examples", "private-lan.yaml"),
    "-o",
    out,
    "--boot-dir",
    BOOT,
    "--json",
  ]);
  assert.equal(exp.status, 0, exp.stderr);
  const files = readdirSync(out).sort();
  assert.deepEqual(files, ["domain-vm0.xml", "domain-vm1.xml", "network-lan.xml", "virsh.sh"]);
  for (const f of files.filter((x) => x.endsWith(".xml"))) {
    const v = spawnSync("virt-xml-validate", [join(out, f)], { encoding: "utf8" });
    assert.equal(v.status, 0, `${f}: ${v.stderr}${v.stdout}`);
  }
  // The generated script: virsh net-define, net-start, define, start.
  const run = spawnSync("sh", [join(out, "virsh.sh")], { encoding: "utf8" });
  assert.equal(run.status, 0, `virsh.sh: ${run.stderr}${run.stdout}`);
  const active = virsh(["list", "--name"]).stdout;
  assert.match(active, /lab\.vm0/);
  assert.match(active, /lab\.vm1/);
  // libvirt made the bridge the topology names, with the gateway address, inside its namespace.
  const br = JSON.parse(
    execFileSync("ip", ["-n", NS, "-json", "addr", "show", "dev", "br0"], { encoding: "utf8" }),
  );
  assert.equal(
    br[0].addr_info.find((a: { family: string }) => a.family === "inet")?.local,
    "10.0.2.1",
  );
  const [a, b] = await Promise.all([
    agentExec(
      "lab.vm0",
      "for i in $(seq 30); do ping -c1 -W1 10.0.2.3 >/dev/null && ip -4 -o addr && exit 0; done; exit 1",
    ),
    agentExec(
      "lab.vm1",
      "for i in $(seq 30); do ping -c1 -W1 10.0.2.2 >/dev/null && ip -4 -o addr && exit 0; done; exit 1",
    ),
  ]);
  assert.equal(a.code, 0, `vm0 could not ping vm1: ${a.out}`);
  assert.equal(b.code, 0, `vm1 could not ping vm0: ${b.out}`);
  // Each VM holds the address of its fixed DHCP lease (libvirt's dnsmasq, <host mac name ip>).
  assert.match(a.out, /inet 10\.0\.2\.2\/24/);
  assert.match(b.out, /inet 10\.0\.2\.3\/24/);
});
