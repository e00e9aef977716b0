// The seed's sections 3 and 1 for real: two built-in guests on a private bridge, and a user-network forward.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT } from "../helpers/golden.js";
import { CLI } from "../helpers/topology.js";
import { addNetns, delNetns, httpGet, qemuPids, qnetEnv, sh, snapshot } from "./helpers/netns.js";

const example = (name: string) => join(REPO_ROOT, "examples", `${name}.yaml`);

describe("private-lan: two VMs on a private bridge", () => {
  const ns = `qnt-vms-${process.pid}`;
  const env = qnetEnv();
  let before_: ReturnType<typeof snapshot>;

  before(() => {
    addNetns(ns);
    before_ = snapshot(ns);
    const r = env.qnet(["up", example("private-lan"), "--netns", ns]);
    assert.equal(r.status, 0, `up failed:\n${r.stderr}`);
    assert.match(r.stderr, /VM vm0: ready/);
  });
  after(() => {
    env.qnet(["down", "lab"]);
    delNetns(ns);
    env.cleanup();
  });

  test("VMs reach each other and the gateway through the guest agent", () => {
    for (const [vm, target] of [
      ["vm0", "10.0.2.3"],
      ["vm1", "10.0.2.2"],
      ["vm0", "10.0.2.1"],
      ["vm1", "10.0.2.1"],
    ] as const) {
      const r = env.qnet(["exec", "lab", vm, "--", "ping", "-c1", "-W3", target]);
      assert.equal(r.status, 0, `${vm} -> ${target}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /1 packets received/);
    }
  });

  test("a failing command's exit code comes back", () => {
    const r = env.qnet(["exec", "lab", "vm0", "--", "ping", "-c1", "-W1", "10.0.2.99"]);
    assert.notEqual(r.status, 0);
  });

  test("the namespace reaches both VMs", () => {
    for (const ip of ["10.0.2.2", "10.0.2.3"]) {
      sh(["ip", "netns", "exec", ns, "ping", "-c1", "-W3", ip]);
    }
  });

  test("each guest holds its planned address and MAC", () => {
    const r = env.qnet(["exec", "lab", "vm1", "--", "ip", "-o", "-4", "addr", "show"]);
    assert.match(r.stdout, /inet 10\.0\.2\.3\/24/);
    const l = env.qnet(["exec", "lab", "vm1", "--", "cat", "/sys/class/net/eth0/address"]);
    assert.equal(l.stdout.trim(), "52:54:00:12:34:57");
  });

  test("qnet ssh reaches vm1 at its address on the bridge, inside the lab's namespace", () => {
    const r = env.qnet(["ssh", "lab", "vm1", "--", "cat", "/proc/sys/kernel/hostname"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "vm1");
    const cfg = env.qnet(["ssh-config", "lab"]);
    assert.match(cfg.stdout, /^Host vm1\n\s+HostName 10\.0\.2\.3$/m);
    assert.match(cfg.stdout, new RegExp(`ip netns exec ${ns}`));
  });

  test("status shows both VMs running, and a killed VM as drift", () => {
    const s = JSON.parse(env.qnet(["status", "lab", "--json"]).stdout);
    const vms = s.objects.filter((o: { kind: string }) => o.kind === "vm");
    assert.deepEqual(
      vms.map((o: { name: string; state: string }) => [o.name, o.state]),
      [
        ["vm0", "present"],
        ["vm1", "present"],
      ],
    );
  });

  test("console: a command typed on the serial console runs, and Ctrl-] detaches", async () => {
    const child = spawn(
      process.execPath,
      [CLI, "console", "--state-dir", env.stateRoot, "lab", "vm0"],
      {
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    child.stdin.write("\necho console-$((6*7))\n");
    for (let i = 0; i < 50 && !out.includes("console-42"); i++) await sleep(100);
    child.stdin.write(Buffer.from([0x1d]));
    assert.equal(await exited, 0);
    assert.match(out, /console-42/);
  });

  test("exec of a program that does not exist: the guest's message and 127; not executable: 126", () => {
    const missing = env.qnet(["exec", "lab", "vm0", "--", "/no/such/cmd", "x"]);
    assert.equal(missing.status, 127, missing.stderr);
    assert.match(missing.stderr, /\/no\/such\/cmd: .*No such file or directory/);
    assert.doesNotMatch(missing.stderr, /internal error/);
    const bare = env.qnet(["exec", "lab", "vm0", "--", "no-such-cmd"]);
    assert.equal(bare.status, 127, bare.stderr);
    const notExec = env.qnet(["exec", "lab", "vm0", "--", "/etc/hostname"]);
    assert.equal(notExec.status, 126, notExec.stderr);
    assert.match(notExec.stderr, /\/etc\/hostname: .*(Permission denied|not executable)/i);
  });

  test("a guest agent that answers garbage: a located message naming the VM and socket, exit 1", async () => {
    const qga = join(env.stateRoot, "lab", "vm", "vm1.qga");
    renameSync(qga, `${qga}.real`);
    const server = createServer((c) => {
      // The sync's sentinel, then something that is not JSON.
      c.on("data", () => c.end(Buffer.concat([Buffer.from([0xff]), Buffer.from("{not json}\n")])));
    });
    await new Promise<void>((res) => server.listen(qga, res));
    try {
      const r = env.qnet(["exec", "lab", "vm1", "--", "true"], 30_000);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /VM vm1 of lab lab: its guest agent \(.*vm1\.qga\) failed/);
      assert.match(r.stderr, /hint: /);
      assert.doesNotMatch(r.stderr, /internal error|^\s+at /m);
    } finally {
      await new Promise((res) => server.close(res));
      rmSync(qga, { force: true });
      renameSync(`${qga}.real`, qga);
    }
    assert.equal(env.qnet(["exec", "lab", "vm1", "--", "true"]).status, 0);
  });

  test("exec to a VM whose QEMU died says so at once, with the way back, exit 1", () => {
    const pid = qemuPids("lab").find((p) =>
      readFileSync(`/proc/${p}/cmdline`, "utf8").includes("process=qnet:lab:vm1"),
    )!;
    process.kill(pid, "SIGKILL");
    for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) sh(["sleep", "0.1"]);
    const t0 = Date.now();
    const r = env.qnet(["exec", "lab", "vm1", "--", "true"]);
    assert.equal(r.status, 1, r.stderr);
    assert.ok(Date.now() - t0 < 3_000, `took ${Date.now() - t0} ms`);
    assert.match(r.stderr, /VM vm1 of lab lab is not running/);
    assert.match(r.stderr, /qnet up/);
  });

  test("down leaves the namespace as it was and no QEMU behind", () => {
    const r = env.qnet(["down", "lab"]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(snapshot(ns), before_);
    assert.deepEqual(qemuPids("lab"), []);
  });
});

describe("user-forward: a host port reaches a service in the guest", () => {
  const ns = `qnt-fwd-${process.pid}`;
  const env = qnetEnv();

  before(() => {
    addNetns(ns);
    // A second address in the namespace: the forward must not answer there (it binds 127.0.0.1).
    sh(["ip", "-n", ns, "link", "add", "qv0", "type", "veth", "peer", "name", "qv1"]);
    sh(["ip", "-n", ns, "addr", "add", "10.77.0.1/24", "dev", "qv0"]);
    sh(["ip", "-n", ns, "link", "set", "qv0", "up"]);
    sh(["ip", "-n", ns, "link", "set", "qv1", "up"]);
    const r = env.qnet(["up", example("user-forward"), "--netns", ns]);
    assert.equal(r.status, 0, `up failed:\n${r.stderr}`);
  });
  after(() => {
    env.qnet(["down", "web"]);
    delNetns(ns);
    env.cleanup();
  });

  test("a listener started in the guest is reached on 127.0.0.1:8080 and not elsewhere", () => {
    const start = env.qnet([
      "exec",
      "web",
      "vm",
      "--",
      "sh",
      "-c",
      "mkdir -p /www && echo hello-from-guest > /www/index.html && httpd -p 80 -h /www",
    ]);
    assert.equal(start.status, 0, start.stderr);
    // The guest's httpd daemonizes: give it a moment to listen.
    let ok = httpGet(ns, "http://127.0.0.1:8080/");
    for (let i = 0; i < 10 && !ok.ok; i++) {
      sh(["sleep", "0.5"]);
      ok = httpGet(ns, "http://127.0.0.1:8080/");
    }
    assert.ok(ok.ok, "forward on 127.0.0.1:8080 did not answer");
    assert.equal(ok.body.trim(), "hello-from-guest");
    const other = httpGet(ns, "http://10.77.0.1:8080/");
    assert.equal(other.ok, false, "the forward answered on an address it was not bound to");
  });

  test("the seed's ssh -p 2222 works as written: plain OpenSSH, the lab key, the pinned host key", () => {
    // No qnet code on this path: the client, the lab's key and known_hosts from the state directory.
    const keys = join(env.stateRoot, "web", "ssh");
    const pub = readFileSync(join(keys, "host-vm_ed25519.pub"), "utf8").trim();
    const kh = join(env.stateRoot, "known_hosts.2222");
    writeFileSync(kh, `[127.0.0.1]:2222 ${pub.split(" ").slice(0, 2).join(" ")}\n`);
    const ssh = (identity: string, knownHosts: string) =>
      spawnSync(
        "ip",
        [
          ...["netns", "exec", ns, "ssh", "-F", "/dev/null", "-o", "BatchMode=yes"],
          ...["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`],
          ...["-i", identity, "-p", "2222", "root@127.0.0.1", "hostname"],
        ],
        { encoding: "utf8", timeout: 30_000 },
      );
    const r = ssh(join(keys, "id_ed25519"), kh);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "vm");
    // Another key pinned for the address: the client refuses the server.
    const wrong = join(env.stateRoot, "known_hosts.wrong");
    writeFileSync(wrong, `[127.0.0.1]:2222 ${readFileSync(join(keys, "id_ed25519.pub"), "utf8")}`);
    const refused = ssh(join(keys, "id_ed25519"), wrong);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  test("qnet ssh runs a command over the forward; ssh-config names the route", () => {
    const r = env.qnet(["ssh", "web", "vm", "--", "cat", "/proc/sys/kernel/hostname"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "vm");
    const cfg = env.qnet(["ssh-config", "web"]);
    assert.equal(cfg.status, 0, cfg.stderr);
    assert.match(cfg.stdout, /^Host vm$/m);
    assert.match(cfg.stdout, /^\s+HostName 127\.0\.0\.1$/m);
    assert.match(cfg.stdout, /^\s+Port 2222$/m);
  });

  test("down stops the VM", () => {
    assert.equal(env.qnet(["down", "web"]).status, 0);
    assert.deepEqual(qemuPids("web"), []);
  });
});
