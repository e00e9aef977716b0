// Rootless labs for real: two normal users (made by the test) run qnet inside a stand-in host namespace
// with an "internet" namespace behind it; their labs live in user and network namespaces of their own.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT } from "../helpers/golden.js";
import { CLI } from "../helpers/topology.js";
import { addNetns, delNetns, sh, snapshot } from "./helpers/netns.js";

// The examples under names of this run: other suites on the machine find QEMU by `process=qnet:<lab>:`
// (labs "lab", "svc", "web"), and must neither see nor kill these users' VMs.
const LAB = `rl${process.pid % 100_000}`;
const SVC = `rs${process.pid % 100_000}`;
const WEB = `rw${process.pid % 100_000}`;
const examples = mkdtempSync("/tmp/qnt-rl-examples-");
const RENAMED: Record<string, string> = { "private-lan": LAB, services: SVC, "user-forward": WEB };
for (const [file, name] of Object.entries(RENAMED))
  writeFileSync(
    join(examples, `${file}.yaml`),
    readFileSync(join(REPO_ROOT, "examples", `${file}.yaml`), "utf8").replace(
      /^name: \S+$/m,
      `name: ${name}`,
    ),
    { mode: 0o644 },
  );
chmodSync(examples, 0o755);
const example = (name: string) =>
  RENAMED[name] ? join(examples, `${name}.yaml`) : join(REPO_ROOT, "examples", `${name}.yaml`);
const ID = process.pid % 100_000;
const HOST = `qnt-rl-${ID}-host`;
const INET = `qnt-rl-${ID}-inet`;
const INET_IP = "198.51.100.2";
const USERS = { a: `qnrl${ID}a`, b: `qnrl${ID}b` };
const uidOf = (user: string) => Number(sh(["id", "-u", user]).trim());
const web = mkdtempSync("/tmp/qnt-rl-web-");
const xdgB = `/tmp/qnt-rl-${ID}-xdg-b`;
const children: ChildProcess[] = [];

/**
 * The CLI as the test users run it: the checkout's, or, when a user cannot read the checkout (a clone
 * under a 0700 home), a copy of what qnet needs at run time in a world-readable directory (hard links
 * where the filesystem allows).
 */
let userCli = CLI;
let copied: string | null = null;
function readableCli(user: string): string {
  const can = (cli: string) =>
    spawnSync("setpriv", [
      ...["--reuid", user, "--regid", user, "--init-groups"],
      ...["test", "-r", cli],
    ]).status === 0;
  if (can(CLI)) return CLI;
  copied = mkdtempSync("/tmp/qnt-rl-checkout-");
  chmodSync(copied, 0o755);
  for (const part of ["package.json", "packages", "dist", "node_modules"]) {
    const from = join(REPO_ROOT, part);
    if (spawnSync("cp", ["-al", from, copied]).status !== 0) sh(["cp", "-a", from, copied]);
  }
  const cli = join(copied, "dist", "src", "cli", "main.js");
  assert.ok(can(cli), `${user} cannot read ${cli} either`);
  return cli;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** qnet as `user` inside the stand-in host namespace (setpriv: the user's uid, gid and groups only). */
function qnetAs(
  user: string,
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Run {
  const r = spawnSync(
    "ip",
    [
      ...["netns", "exec", HOST, "setpriv", "--reuid", user, "--regid", user, "--init-groups"],
      ...["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", `HOME=/home/${user}`, `USER=${user}`],
      ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
      ...[process.execPath, userCli, ...args],
    ],
    { encoding: "utf8", timeout: opts.timeoutMs ?? 240_000, cwd: "/" },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const envB = { XDG_RUNTIME_DIR: xdgB };
const ok = (r: Run, what: string) =>
  assert.equal(r.status, 0, `${what} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);

/**
 * A ping from a VM of the user's lab, up to 3 tries (TCG guests on 2 shared cores: one lost echo under a
 * load peak is not a broken lab); every try's output in the message when all fail.
 */
function pingFrom(user: string, lab: string, vm: string, target: string, env = {}): void {
  const tries: Run[] = [];
  for (let i = 0; i < 3; i++) {
    const r = qnetAs(user, ["exec", lab, vm, "--", "ping", "-c1", "-W3", target], { env });
    if (r.status === 0) return;
    tries.push(r);
  }
  const status = qnetAs(user, ["status", lab], { env });
  assert.fail(
    `${user}: ${lab} ${vm} → ${target} failed 3 times:\n${tries.map((t) => `${t.stdout}${t.stderr}`).join("\n")}\n${status.stdout}`,
  );
}

/** What the stand-in host namespace holds: links, addresses, routes and its nft ruleset. */
function hostState() {
  return { ...snapshot(HOST), nft: sh(["ip", "netns", "exec", HOST, "nft", "list", "ruleset"]) };
}

/** PIDs of the user's processes (zombies not yet reaped by the machine's init are waited for). */
async function processesOf(user: string, waitMs = 8_000): Promise<string[]> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const r = spawnSync("ps", ["-u", user, "-o", "pid=,stat=,args="], { encoding: "utf8" });
    const list = r.stdout.split("\n").filter((l) => l.trim());
    if (list.length === 0 || Date.now() > deadline) return list;
    await sleep(200);
  }
}

/** The user's labs under a state root (directories). */
function labsIn(root: string): string[] {
  return existsSync(root) ? readdirSync(root).filter((n) => !n.endsWith(".lock")) : [];
}

describe("rootless labs: a normal user's qnet, no sudo", () => {
  let clean: ReturnType<typeof hostState>;
  let rootA: string;

  before(() => {
    for (const u of Object.values(USERS)) sh(["useradd", "--create-home", "--shell", "/bin/sh", u]);
    rootA = `/tmp/qnet-${uidOf(USERS.a)}`;
    mkdirSync(xdgB, { mode: 0o700 });
    sh(["chown", `${USERS.b}:${USERS.b}`, xdgB]);
    userCli = readableCli(USERS.a);
    addNetns(HOST);
    addNetns(INET);
    // IPv4 only: no link-local addresses and routes appearing later to blur the host's snapshot.
    for (const ns of [HOST, INET])
      for (const k of ["all", "default"])
        sh(["ip", "netns", "exec", ns, "sysctl", "-qw", `net.ipv6.conf.${k}.disable_ipv6=1`]);
    sh(["ip", "link", "add", "rlh0", "netns", HOST, "type", "veth", "peer", "rli0", "netns", INET]);
    sh(["ip", "-n", HOST, "addr", "add", "198.51.100.1/24", "dev", "rlh0"]);
    sh(["ip", "-n", INET, "addr", "add", `${INET_IP}/24`, "dev", "rli0"]);
    sh(["ip", "-n", HOST, "link", "set", "rlh0", "up"]);
    sh(["ip", "-n", INET, "link", "set", "rli0", "up"]);
    sh(["ip", "-n", HOST, "route", "add", "default", "via", INET_IP]);
    writeFileSync(join(web, "index.html"), "hello from the internet\n");
    const httpd = spawn(
      "ip",
      ["netns", "exec", INET, "busybox", "httpd", "-f", "-p", "80", "-h", web],
      { stdio: "ignore" },
    );
    children.push(httpd);
    clean = hostState();
  });

  // A failed test must not leave its lab to the next one (the private lab spans the first three tests).
  afterEach(() => {
    for (const lab of [SVC, WEB]) if (existsSync(join(rootA, lab))) qnetAs(USERS.a, ["down", lab]);
  });

  after(async () => {
    for (const [u, env] of [
      [USERS.a, {}],
      [USERS.b, envB],
    ] as const) {
      for (const lab of [LAB, SVC, WEB]) qnetAs(u, ["down", lab], { env });
    }
    for (const c of children) if (c.pid) spawnSync("kill", [String(c.pid)]);
    for (const u of Object.values(USERS)) {
      await processesOf(u);
      spawnSync("userdel", ["--remove", u]);
    }
    if (copied) rmSync(copied, { recursive: true, force: true });
    delNetns(HOST);
    delNetns(INET);
    rmSync(web, { recursive: true, force: true });
    rmSync(examples, { recursive: true, force: true });
    rmSync(xdgB, { recursive: true, force: true });
    if (rootA) rmSync(rootA, { recursive: true, force: true });
  });

  test("private-lan: up as the user; the VMs ping each other and the gateway; the host is unchanged", async () => {
    const t0 = performance.now();
    const up = qnetAs(USERS.a, ["up", example("private-lan")]);
    ok(up, "up");
    assert.match(up.stderr, /rootless: starting the lab's namespace holder/);
    for (const [vm, target] of [
      ["vm0", "10.0.2.3"],
      ["vm1", "10.0.2.2"],
      ["vm0", "10.0.2.1"],
      ["vm1", "10.0.2.1"],
    ] as const)
      pingFrom(USERS.a, LAB, vm, target);
    process.stderr.write(
      `rootless private-lan: start to ping ${Math.round(performance.now() - t0)} ms\n`,
    );
    // State: the user's own, private; the holder recorded there.
    const st = statSync(rootA);
    assert.equal(st.uid, uidOf(USERS.a));
    assert.equal(st.mode & 0o777, 0o700);
    assert.ok(existsSync(join(rootA, LAB, "rootless.json")));
    const status = qnetAs(USERS.a, ["status", LAB, "--json"]);
    ok(status, "status");
    const s = JSON.parse(status.stdout) as {
      ok: boolean;
      objects: { kind: string; state: string }[];
    };
    assert.equal(s.ok, true);
    assert.ok(s.objects.some((o) => o.kind === "rootless-holder" && o.state === "present"));
    assert.ok(s.objects.some((o) => o.kind === "vm" && o.state === "present"));
    // Nothing of the lab is on the (stand-in) host: no bridge, no tap, no address, no route, no rule.
    assert.deepEqual(hostState(), clean);
    // Root sees the user's lab, marked with its owner, and leaves it alone.
    const rootList = spawnSync(process.execPath, [CLI, "status"], { encoding: "utf8" });
    assert.match(rootList.stdout, new RegExp(`^${USERS.a}:${LAB}\\tup \\(rootless\\)`, "m"));
  });

  test("a second user's lab with the same name runs at the same time ($XDG_RUNTIME_DIR/qnet)", async () => {
    const up = qnetAs(USERS.b, ["up", example("private-lan")], { env: envB });
    ok(up, "up as the second user");
    pingFrom(USERS.b, LAB, "vm0", "10.0.2.3", envB);
    pingFrom(USERS.b, LAB, "vm1", "10.0.2.1", envB);
    pingFrom(USERS.a, LAB, "vm0", "10.0.2.3");
    assert.equal(statSync(join(xdgB, "qnet")).mode & 0o777, 0o700);
    assert.ok(existsSync(join(xdgB, "qnet", LAB, "rootless.json")));
    ok(qnetAs(USERS.b, ["down", LAB], { env: envB }), "down as B");
    assert.deepEqual(await processesOf(USERS.b), []);
    assert.deepEqual(labsIn(join(xdgB, "qnet")), []);
    // A's lab is untouched.
    ok(qnetAs(USERS.a, ["status", LAB]), "A's status after B's down");
  });

  test("down as the user: no process of the user, no state, the host unchanged", async () => {
    const down = qnetAs(USERS.a, ["down", LAB]);
    ok(down, "down");
    assert.deepEqual(await processesOf(USERS.a), []);
    assert.deepEqual(labsIn(rootA), []);
    assert.deepEqual(hostState(), clean);
  });

  test("type: bridged is refused at its field, with the reason and the alternative; nothing is made", async () => {
    const r = qnetAs(USERS.a, ["up", example("lan-bridge")]);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /lan-bridge\.yaml:\d+:\d+: error: networks\.lan\.type: /);
    assert.match(r.stderr, /the host's LAN interface belongs to root/);
    assert.match(r.stderr, /use a `user` network .* or run qnet as root/);
    assert.deepEqual(labsIn(rootA), []);
    assert.deepEqual(await processesOf(USERS.a, 0), []);
  });

  test("a state root owned by another user is refused", () => {
    const evil = `/tmp/qnt-rl-${ID}-evil`;
    mkdirSync(join(evil, "qnet"), { recursive: true, mode: 0o700 });
    try {
      sh(["chown", "-R", `${USERS.b}:${USERS.b}`, evil]);
      sh(["chmod", "0755", evil]);
      const r = qnetAs(USERS.a, ["up", example("private-lan")], { env: { XDG_RUNTIME_DIR: evil } });
      assert.equal(r.status, 4, r.stderr);
      assert.match(r.stderr, /the state root .*qnet is owned by uid \d+, not by you/);
    } finally {
      rmSync(evil, { recursive: true, force: true });
    }
  });

  test("services: names, NAT through pasta, the forward on the user's loopback, check", async () => {
    const up = qnetAs(USERS.a, ["up", example("services")]);
    ok(up, "up");
    assert.match(up.stderr, /rootless: starting pasta/);
    assert.match(up.stderr, /rootless: no hosts: `dns: host`/);
    ok(
      qnetAs(USERS.a, ["exec", SVC, "vm0", "--", "ping", "-c1", "-W3", "vm1"]),
      "vm0 → vm1 by name",
    );
    ok(
      qnetAs(USERS.a, ["exec", SVC, "vm1", "--", "ping", "-c1", "-W3", `vm0.${SVC}`]),
      "vm1 → vm0.<lab>",
    );
    // NAT: an HTTP server in the "internet" namespace, behind the stand-in host's default route.
    // Up to 3 tries of 20 s (a connection through pasta once hung under load, with nc's -w not ending it).
    const http = qnetAs(USERS.a, [
      ...["exec", SVC, "vm0", "--timeout", "90", "--", "sh", "-c"],
      `for i in 1 2 3; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 20 nc -w 5 ${INET_IP} 80 && exit 0; done; exit 1`,
    ]);
    ok(http, "HTTP through NAT");
    assert.match(http.stdout, /hello from the internet/);
    // The forward tcp:8022:vm0:22, published by pasta on the stand-in host's loopback, reaches dropbear.
    const banner = spawnSync(
      "ip",
      ["netns", "exec", HOST, "busybox", "nc", "-w", "5", "127.0.0.1", "8022"],
      { encoding: "utf8", input: "", timeout: 15_000 },
    );
    assert.match(banner.stdout, /^SSH-2\.0-dropbear/);
    const listeners = sh(["ip", "netns", "exec", HOST, "ss", "-Hltnp"]);
    assert.match(listeners, /127\.0\.0\.1:8022 .*passt/);
    const ssh = qnetAs(USERS.a, ["ssh", SVC, "vm0", "--", "hostname"], { timeoutMs: 60_000 });
    ok(ssh, "qnet ssh");
    assert.equal(ssh.stdout.trim(), "vm0");
    const check = qnetAs(USERS.a, ["check", SVC]);
    ok(check, "check");
    assert.doesNotMatch(check.stdout, /FAIL/);
    assert.deepEqual(hostState(), clean);
    // Drift inside and outside the lab's namespaces: status names it, up repairs exactly it.
    const dnsmasq = sh([
      "pgrep",
      "-u",
      USERS.a,
      "-f",
      `dnsmasq --conf-file=${rootA}/${SVC}/`,
    ]).trim();
    const pasta = sh(["cat", join(rootA, SVC, "pasta.pid")]).trim();
    process.kill(Number(dnsmasq), "SIGKILL");
    process.kill(Number(pasta), "SIGKILL");
    await sleep(300);
    const drift = qnetAs(USERS.a, ["status", SVC, "--json"]);
    assert.equal(drift.status, 1);
    const bad = (JSON.parse(drift.stdout) as { objects: { kind: string; state: string }[] }).objects
      .filter((o) => o.state !== "present")
      .map((o) => `${o.kind} ${o.state}`);
    assert.deepEqual(bad.sort(), ["dnsmasq missing", "pasta missing"]);
    const repair = qnetAs(USERS.a, ["up", example("services")]);
    ok(repair, "up (repair)");
    assert.match(
      repair.stdout,
      new RegExp(`lab ${SVC} is up \\(1 changes\\):\n {2}\\+ run dnsmasq`),
    );
    assert.match(repair.stderr, /rootless: starting pasta/);
    ok(qnetAs(USERS.a, ["status", SVC]), "status after the repair");
    const again = spawnSync(
      "ip",
      ["netns", "exec", HOST, "busybox", "nc", "-w", "5", "127.0.0.1", "8022"],
      { encoding: "utf8", input: "", timeout: 15_000 },
    );
    assert.match(again.stdout, /^SSH-2\.0-dropbear/);
    ok(qnetAs(USERS.a, ["down", SVC]), "down");
    assert.deepEqual(await processesOf(USERS.a), []);
    assert.deepEqual(labsIn(rootA), []);
  });

  test("user networking (the seed's section 1): forwards on the user's loopback, the internet through it", async () => {
    ok(qnetAs(USERS.a, ["up", example("user-forward")]), "up");
    const banner = spawnSync(
      "ip",
      ["netns", "exec", HOST, "busybox", "nc", "-w", "5", "127.0.0.1", "2222"],
      { encoding: "utf8", input: "", timeout: 15_000 },
    );
    assert.match(banner.stdout, /^SSH-2\.0-dropbear/);
    const http = qnetAs(USERS.a, [
      ...["exec", WEB, "vm", "--", "sh", "-c"],
      `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${INET_IP} 80`,
    ]);
    ok(http, "HTTP from a user network");
    assert.match(http.stdout, /hello from the internet/);
    ok(qnetAs(USERS.a, ["down", WEB]), "down");
    assert.deepEqual(await processesOf(USERS.a), []);
    assert.deepEqual(labsIn(rootA), []);
    assert.deepEqual(hostState(), clean);
  });

  test("slirp4netns instead of pasta: NAT and the forward on the loopback", async () => {
    const env = { QNET_ROOTLESS_HELPER: "slirp4netns" };
    const up = qnetAs(USERS.a, ["up", example("services")], { env });
    ok(up, "up");
    assert.match(up.stderr, /rootless: starting slirp4netns/);
    const http = qnetAs(USERS.a, [
      ...["exec", SVC, "vm1", "--", "sh", "-c"],
      `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${INET_IP} 80`,
    ]);
    ok(http, "HTTP through NAT");
    assert.match(http.stdout, /hello from the internet/);
    const banner = spawnSync(
      "ip",
      ["netns", "exec", HOST, "busybox", "nc", "-w", "5", "127.0.0.1", "8022"],
      { encoding: "utf8", input: "", timeout: 15_000 },
    );
    assert.match(banner.stdout, /^SSH-2\.0-dropbear/);
    const status = JSON.parse(qnetAs(USERS.a, ["status", SVC, "--json"]).stdout) as {
      objects: { kind: string; state: string }[];
    };
    assert.ok(status.objects.some((o) => o.kind === "slirp4netns" && o.state === "present"));
    ok(qnetAs(USERS.a, ["down", SVC]), "down");
    assert.deepEqual(await processesOf(USERS.a), []);
    assert.deepEqual(labsIn(rootA), []);
    assert.deepEqual(hostState(), clean);
  });

  test("as root, --rootless builds the lab the same way; root's host namespace is unchanged", async () => {
    const state = mkdtempSync("/tmp/qnt-rl-rootstate-");
    const asRoot = (args: string[]) =>
      spawnSync(
        "ip",
        [
          "netns",
          "exec",
          HOST,
          process.execPath,
          CLI,
          args[0]!,
          "--state-dir",
          state,
          ...args.slice(1),
        ],
        { encoding: "utf8", timeout: 240_000 },
      );
    try {
      const up = asRoot(["up", example("services"), "--rootless"]);
      assert.equal(up.status, 0, up.stderr);
      assert.match(up.stderr, /rootless: starting pasta/);
      const ping = asRoot(["exec", SVC, "vm0", "--", "ping", "-c1", "-W3", "vm1"]);
      assert.equal(ping.status, 0, ping.stderr);
      assert.deepEqual(hostState(), clean);
      const down = asRoot(["down", SVC]);
      assert.equal(down.status, 0, down.stderr);
      assert.deepEqual(labsIn(state), []);
      const left = spawnSync("pgrep", ["-f", "--", `--qnet-holder=${state}`], { encoding: "utf8" });
      assert.equal(left.status, 1, `holder left: ${left.stdout}`);
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  test("the holder killed: everything inside goes; status says so and cleans up, and so does down", async () => {
    for (const cmd of ["status", "down"] as const) {
      ok(qnetAs(USERS.a, ["up", example("services"), "--quiet"]), "up");
      const holder = Number(sh(["cat", join(rootA, SVC, "holder.pid")]).trim());
      process.kill(holder, "SIGKILL");
      const r = qnetAs(USERS.a, [cmd, SVC]);
      assert.match(
        `${r.stdout}${r.stderr}`,
        /namespace holder (died|is gone), and everything inside went with it/,
      );
      assert.equal(r.status, cmd === "status" ? 1 : 0, r.stderr);
      assert.deepEqual(await processesOf(USERS.a), [], `after ${cmd}`);
      assert.deepEqual(labsIn(rootA), [], `after ${cmd}`);
    }
    assert.deepEqual(hostState(), clean);
  });

  test("SIGKILL of up at several points, then down: nothing left", async () => {
    // 1: holder journaled, not started; 2: holder up, pasta journaled; 3 and later: the qnet inside.
    for (const k of [1, 2, 3, 5, 8]) {
      const r = qnetAs(USERS.a, ["up", example("services"), "--quiet"], {
        env: { QNET_KILL_AFTER: String(k) },
      });
      assert.notEqual(r.status, 0, `up with QNET_KILL_AFTER=${k} was not killed`);
      ok(qnetAs(USERS.a, ["down", SVC]), `down after kill ${k}`);
      assert.deepEqual(await processesOf(USERS.a), [], `processes after kill ${k}`);
      assert.deepEqual(labsIn(rootA), [], `state after kill ${k}`);
      assert.deepEqual(hostState(), clean, `host after kill ${k}`);
    }
  });
});
