// Boots the built-in guest in real QEMU (user networking, no host network change) and talks to its agent.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildGuest } from "../../src/guest/build.js";
import { guestCmdline, READY_PREFIX } from "../../src/guest/init-script.js";

const root = mkdtempSync(join(tmpdir(), `qnt-guest-boot-${process.pid}-`));
const cacheDir = join(root, "cache");
/**
 * TCG unless asked: this machine's /dev/kvm is kvm-pvm (nested), which cannot boot a stock kernel
 * (the guest hangs after the real-mode setup). QNET_E2E_ACCEL=kvm:tcg where KVM is real.
 */
const ACCEL =
  process.env.QNET_E2E_ACCEL ??
  (existsSync("/sys/module/kvm_pvm") || !existsSync("/dev/kvm") ? "tcg" : "kvm:tcg");

after(() => rmSync(root, { recursive: true, force: true }));

/** One line-delimited JSON exchange with qemu-ga: send a command, return its "return" value. */
class Agent {
  private buf = "";
  private waiters: Array<(line: string) => void> = [];
  private constructor(private readonly s: net.Socket) {
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf("\n"); i >= 0; i = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (line) this.waiters.shift()?.(line);
      }
    });
  }
  static connect(path: string): Promise<Agent> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(path, () => resolve(new Agent(s)));
      s.once("error", reject);
    });
  }
  async call(execute: string, args?: unknown, timeoutMs = 30_000): Promise<unknown> {
    const line = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`no answer to ${execute} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
      this.s.write(
        `${JSON.stringify(args === undefined ? { execute } : { execute, arguments: args })}\n`,
      );
    });
    const msg = JSON.parse(line) as { return?: unknown; error?: { desc: string } };
    if (msg.error) throw new Error(`${execute}: ${msg.error.desc}`);
    return msg.return;
  }
  /** Run a program in the guest and return its stdout. */
  async exec(path: string, arg: string[]): Promise<{ code: number; out: string }> {
    const { pid } = (await this.call("guest-exec", { path, arg, "capture-output": true })) as {
      pid: number;
    };
    for (let i = 0; i < 100; i++) {
      const st = (await this.call("guest-exec-status", { pid })) as {
        exited: boolean;
        exitcode?: number;
        "out-data"?: string;
      };
      if (st.exited) {
        return {
          code: st.exitcode ?? -1,
          out: Buffer.from(st["out-data"] ?? "", "base64").toString(),
        };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${path} did not exit`);
  }
  close(): void {
    this.s.destroy();
  }
}

/** A QEMU process running the built-in guest, with its serial log and agent socket. */
interface Booted {
  pid: number;
  serial: string;
  agent: Agent;
  hostname: string;
  bootMs: number;
  kill(): void;
}

async function boot(name: string, nicModel: string, append: string, mac: string): Promise<Booted> {
  const guest = await buildGuest({ nicModels: [nicModel], cacheDir });
  const dir = join(root, name);
  mkdirSync(dir);
  const serial = join(dir, "serial.log");
  const sock = join(dir, "qga.sock");
  const argv = [
    "--net", // a fresh, empty network namespace: QEMU's user network cannot reach anything outside
    "--",
    "qemu-system-x86_64",
    "-nodefaults",
    "-machine",
    `q35,accel=${ACCEL}`,
    "-m",
    "256",
    "-kernel",
    guest.kernel,
    "-initrd",
    guest.initrd,
    "-append",
    append,
    "-serial",
    `file:${serial}`,
    "-display",
    "none",
    "-no-reboot",
    "-netdev",
    "user,id=n0",
    "-device",
    `${nicModel},netdev=n0,mac=${mac},romfile=`,
    "-device",
    "virtio-serial",
    "-chardev",
    `socket,id=qga0,path=${sock},server=on,wait=off`,
    "-device",
    "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
  ];
  const t0 = Date.now();
  // unshare execs QEMU in place, so this PID is QEMU's.
  const qemu: ChildProcess = spawn("unshare", argv, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  let exited: string | undefined;
  qemu.stderr?.on("data", (d) => {
    stderr += String(d);
  });
  qemu.on("exit", (code, sig) => {
    exited = `exit ${code ?? sig}: ${stderr.trim()}`;
  });
  const kill = () => {
    if (qemu.pid !== undefined && exited === undefined) process.kill(qemu.pid, "SIGKILL");
  };
  try {
    const deadline = Date.now() + 120_000;
    let hostname: string | undefined;
    while (hostname === undefined) {
      const log = existsSync(serial) ? readFileSync(serial, "utf8") : "";
      hostname = new RegExp(`^${READY_PREFIX} (\\S+)\\r?$`, "m").exec(log)?.[1];
      if (hostname !== undefined) break;
      if (exited !== undefined || Date.now() > deadline) {
        throw new Error(
          `guest not ready (qemu: ${exited ?? "running"}); serial log:\n${log.slice(-3000)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const bootMs = Date.now() - t0;
    const agent = await Agent.connect(sock);
    return { pid: qemu.pid!, serial, agent, hostname, bootMs, kill };
  } catch (e) {
    kill();
    throw e;
  }
}

describe(`built-in guest: virtio-net-pci with DHCP from QEMU (accel=${ACCEL})`, () => {
  const MAC = "52:54:00:12:34:56";
  let vm: Booted;
  before(async () => {
    const append = guestCmdline({
      hostname: "qnet-boot-test",
      nics: [{ mac: MAC, ip: null, prefix: null, gateway: null, dhcp: true }],
    });
    vm = await boot("dhcp", "virtio-net-pci", append, MAC);
  });
  after(() => {
    vm?.agent.close();
    vm?.kill();
  });

  it("prints the readiness line with its hostname exactly once", (t) => {
    t.diagnostic(`boot to ready: ${vm.bootMs} ms (accel=${ACCEL})`);
    assert.equal(vm.hostname, "qnet-boot-test");
    const log = readFileSync(vm.serial, "utf8");
    assert.equal(log.split(`${READY_PREFIX} `).length, 2);
  });

  it("answers guest-ping through the virtio-serial port", async () => {
    assert.deepEqual(await vm.agent.call("guest-ping"), {});
  });

  it("got 10.0.2.15 from QEMU's DHCP on the NIC with the given MAC, with route and resolver", async () => {
    const addr = await vm.agent.exec("ip", ["-4", "-o", "addr", "show"]);
    assert.equal(addr.code, 0);
    assert.match(addr.out, /eth0\s+inet 10\.0\.2\.15\/24/);
    const link = await vm.agent.exec("/bin/cat", ["/sys/class/net/eth0/address"]);
    assert.equal(link.out.trim(), MAC);
    const route = await vm.agent.exec("ip", ["route", "show", "default"]);
    assert.match(route.out, /default via 10\.0\.2\.2 dev eth0/);
    const resolv = await vm.agent.exec("/bin/cat", ["/etc/resolv.conf"]);
    assert.match(resolv.out, /nameserver 10\.0\.2\.3/);
  });

  it("set the hostname and /etc/hosts", async () => {
    assert.equal((await vm.agent.exec("hostname", [])).out.trim(), "qnet-boot-test");
    assert.match((await vm.agent.exec("/bin/cat", ["/etc/hosts"])).out, /qnet-boot-test/);
  });
});

describe(`built-in guest: e1000 with a static address (accel=${ACCEL})`, () => {
  const MAC = "52:54:00:65:31:00";
  let vm: Booted;
  before(async () => {
    const append = guestCmdline({
      hostname: "static-1",
      nics: [{ mac: MAC, ip: "10.0.2.42", prefix: 24, gateway: "10.0.2.2", dhcp: false }],
      dns: "10.0.2.3",
    });
    vm = await boot("static", "e1000", append, MAC);
  });
  after(() => {
    vm?.agent.close();
    vm?.kill();
  });

  it("configures the address, route, resolver and hosts from the command line", async (t) => {
    t.diagnostic(`boot to ready: ${vm.bootMs} ms (accel=${ACCEL})`);
    assert.equal(vm.hostname, "static-1");
    assert.deepEqual(await vm.agent.call("guest-ping"), {});
    const addr = await vm.agent.exec("ip", ["-4", "-o", "addr", "show", "dev", "eth0"]);
    assert.match(addr.out, /inet 10\.0\.2\.42\/24/);
    const route = await vm.agent.exec("ip", ["route", "show", "default"]);
    assert.match(route.out, /default via 10\.0\.2\.2 dev eth0/);
    assert.equal(
      (await vm.agent.exec("/bin/cat", ["/etc/resolv.conf"])).out,
      "nameserver 10.0.2.3\n",
    );
    assert.match((await vm.agent.exec("/bin/cat", ["/etc/hosts"])).out, /^10\.0\.2\.42 static-1$/m);
  });

  it("reaches QEMU's user-network gateway from the static address", async () => {
    const ping = await vm.agent.exec("ping", ["-c", "1", "-W", "5", "10.0.2.2"]);
    assert.equal(ping.code, 0, ping.out);
  });
});
