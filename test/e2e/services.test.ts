// Network services for real: dnsmasq DHCP/DNS, NAT, bridge forwards and a FORWARD-drop firewall, in
// throwaway namespaces (lab, two "VMs" as veth namespaces, "internet", a LAN host), then a byte-exact teardown.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { execa } from "execa";
import type { ExecContext } from "../../src/engine/context.js";
import { reconcile } from "../../src/engine/engine.js";
import { downLab } from "../../src/engine/undo.js";
import { Journal } from "../../src/host/journal.js";
import { pidAlive } from "../../src/host/process.js";
import { ProcessRunner } from "../../src/host/runner.js";
import { compileTopology } from "../../src/load/compile.js";
import type { BridgeNetwork, Lab } from "../../src/model/lab.js";
import { dnsmasqPaths } from "../../src/render/dnsmasq-conf.js";

const BB = "/bin/busybox";
const ID = `${process.pid}`;
const NS = {
  lab: `qnt-svc-${ID}-lab`,
  vm0: `qnt-svc-${ID}-vm0`,
  vm1: `qnt-svc-${ID}-vm1`,
  inet: `qnt-svc-${ID}-inet`,
  lan: `qnt-svc-${ID}-lan`,
};
const LAB = `t${ID}`;
const INET_IP = "198.51.100.2";
const LAB_LAN_IP = "192.0.2.1";

const lab: Lab = compileTopology(
  `
name: ${LAB}
networks:
  lan:
    type: bridge
    subnet: 10.77.0.0/24
    nat: true
    forwards: ["tcp:8080:vm0:80", "tcp:${LAB_LAN_IP}:8081:vm0:80"]
vms:
  vm0: { nics: [{ network: lan }] }
  vm1: { nics: [{ network: lan }] }
`,
  "services.yaml",
).lab;
const net = lab.networks[0] as BridgeNetwork;
const noNat: Lab = { ...lab, networks: [{ ...net, nat: false }] };
const nicOf = (vm: string) => lab.vms.find((v) => v.name === vm)!.nics[0]!;

const tmp = mkdtempSync(join(tmpdir(), "qnt-svc-"));
const stateDir = join(tmp, "state");
const children: ChildProcess[] = [];
let ctx: Omit<ExecContext, "obs">;

/** The service kinds of the engine (the links are made by hand in `before`): what changed, and why. */
async function applyServices(c: Omit<ExecContext, "obs">) {
  const { plan } = await reconcile(c, {
    only: ["sysctl", "nft-table", "firewall", "dnsmasq", "hosts"],
  });
  return {
    changed: plan.actions.length > 0,
    changes: plan.actions.map((a) => `${a.what} (${a.reason})`),
  };
}
let snapshot: Record<string, string>;

async function sh(argv: string[], opts: { reject?: boolean; timeout?: number } = {}) {
  const r = await execa(argv[0]!, argv.slice(1), {
    reject: opts.reject ?? true,
    timeout: opts.timeout ?? 20_000,
    env: { LC_ALL: "C" },
  });
  return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? -1 };
}
const inNs = (ns: string, argv: string[]) => ["ip", "netns", "exec", ns, ...argv];

/** Background process in a namespace, killed by PID in `after`. */
function daemon(ns: string, argv: string[]): void {
  const c = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: "ignore" });
  children.push(c);
}

/** A veth from the lab namespace into `ns`: `labSide` stays in the lab, `eth0` goes to `ns`. */
async function veth(ns: string, labSide: string, mac?: string): Promise<void> {
  await sh([
    "ip",
    "-n",
    NS.lab,
    "link",
    "add",
    labSide,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    ns,
  ]);
  if (mac) await sh(["ip", "-n", ns, "link", "set", "eth0", "address", mac]);
  await sh(["ip", "-n", ns, "link", "set", "eth0", "up"]);
  await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
  await sh(["ip", "-n", NS.lab, "link", "set", labSide, "up"]);
}

/** The rulesets and switches that must come back byte-identical after teardown. */
async function firewallState(): Promise<Record<string, string>> {
  const strip = (s: string) =>
    s
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n");
  return {
    nft: (await sh(inNs(NS.lab, ["nft", "list", "ruleset"]))).stdout,
    iptablesNft: strip((await sh(inNs(NS.lab, ["iptables-nft-save"]))).stdout),
    iptablesLegacy: strip((await sh(inNs(NS.lab, ["iptables-legacy-save"]))).stdout),
    ipForward: (await sh(inNs(NS.lab, ["sysctl", "-n", "net.ipv4.ip_forward"]))).stdout,
  };
}

/** udhcpc in a VM namespace; the script configures address and default route and prints the lease. */
async function dhcp(ns: string): Promise<{ ip: string; router: string; dns: string }> {
  const r = await sh(
    inNs(ns, [
      BB,
      "udhcpc",
      "-i",
      "eth0",
      "-f",
      "-q",
      "-n",
      "-t",
      "5",
      "-T",
      "1",
      "-s",
      join(tmp, "udhcpc.sh"),
    ]),
  );
  const m = /LEASE ip=(\S*) router=(\S*) dns=(\S*)/.exec(r.stdout);
  assert.ok(m, `udhcpc printed no lease:\n${r.stdout}\n${r.stderr}`);
  return { ip: m[1]!, router: m[2]!, dns: m[3]! };
}

/** HTTP GET from a namespace (node: busybox wget crashes in this static build), 3 s timeout. */
const GET = `const r = require("http").get(process.argv[1], { timeout: 3000 }, (res) => {
  let b = ""; res.on("data", (d) => (b += d)); res.on("end", () => process.stdout.write(b));
});
r.on("timeout", () => r.destroy(new Error("timeout")));
r.on("error", (e) => { console.error(e.message); process.exit(1); });`;
const wget = (ns: string, url: string) =>
  sh(inNs(ns, [process.execPath, "-e", GET, url]), { reject: false });

before(async () => {
  for (const ns of Object.values(NS)) await sh(["ip", "netns", "add", ns]);
  await sh(["ip", "-n", NS.lab, "link", "set", "lo", "up"]);
  // The bridge the host-engine phase would make: named as planned, gateway address on it.
  await sh(["ip", "-n", NS.lab, "link", "add", net.bridge, "type", "bridge"]);
  await sh(["ip", "-n", NS.lab, "addr", "add", `${net.gateway}/24`, "dev", net.bridge]);
  await sh(["ip", "-n", NS.lab, "link", "set", net.bridge, "up"]);
  // Two "VMs": veth namespaces whose NIC carries the planned MAC, their lab side on the bridge.
  for (const vm of ["vm0", "vm1"] as const) {
    await veth(NS[vm], `q${vm}${ID}`.slice(0, 15), nicOf(vm).mac);
    await sh(["ip", "-n", NS.lab, "link", "set", `q${vm}${ID}`.slice(0, 15), "master", net.bridge]);
  }
  // "The internet" behind the lab namespace's default route, and a LAN host on another link.
  await veth(NS.inet, "up0");
  await sh(["ip", "-n", NS.lab, "addr", "add", "198.51.100.1/24", "dev", "up0"]);
  await sh(["ip", "-n", NS.inet, "addr", "add", `${INET_IP}/24`, "dev", "eth0"]);
  await sh(["ip", "-n", NS.lab, "route", "add", "default", "via", INET_IP]);
  await veth(NS.lan, "lan0");
  await sh(["ip", "-n", NS.lab, "addr", "add", `${LAB_LAN_IP}/24`, "dev", "lan0"]);
  await sh(["ip", "-n", NS.lan, "addr", "add", "192.0.2.2/24", "dev", "eth0"]);

  // Web servers: one on the internet, one in vm0 (the forward's target).
  for (const [ns, page] of [
    [NS.inet, "internet-page"],
    [NS.vm0, "vm0-page"],
  ] as const) {
    const dir = join(tmp, `www-${page}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "index.html"), `${page}\n`);
    daemon(ns, [BB, "httpd", "-f", "-p", "80", "-h", dir]);
  }
  writeFileSync(
    join(tmp, "udhcpc.sh"),
    [
      `#!${BB} sh`,
      'case "$1" in bound|renew)',
      `  ${BB} ip addr flush dev "$interface"`,
      `  ${BB} ip addr add "$ip/$mask" dev "$interface"`,
      `  [ -n "$router" ] && ${BB} ip route replace default via "$router" dev "$interface"`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not JS
      '  echo "LEASE ip=$ip router=${router:--} dns=${dns:--}";;',
      "esac",
      "exit 0",
      "",
    ].join("\n"),
  );
  chmodSync(join(tmp, "udhcpc.sh"), 0o755);

  // A FORWARD policy of drop, as Docker sets it, in both iptables flavours; then the "before" picture.
  await sh(inNs(NS.lab, ["iptables-nft", "-P", "FORWARD", "DROP"]));
  await sh(inNs(NS.lab, ["iptables-legacy", "-P", "FORWARD", "DROP"]));
  snapshot = await firewallState();

  mkdirSync(stateDir, { mode: 0o700 });
  ctx = {
    lab,
    stateDir,
    runner: new ProcessRunner(NS.lab),
    journal: new Journal(stateDir),
    facts: { kvm: false, vhost: false },
    options: {},
    progress: () => {},
  };
});

after(async () => {
  // Whatever the tests did: take the lab down through its journal, then the namespaces.
  try {
    if (ctx) await downLab({ stateDir, runner: ctx.runner });
  } catch {}
  for (const c of children)
    if (c.pid)
      try {
        process.kill(c.pid, "SIGTERM");
      } catch {}
  for (const ns of Object.values(NS)) await sh(["ip", "netns", "del", ns], { reject: false });
  rmSync(tmp, { recursive: true, force: true });
});

test("services: dnsmasq, NAT table and firewall accepts come up, each change says why", async () => {
  const r = await applyServices(ctx);
  assert.equal(r.changed, true);
  const has = (re: RegExp) =>
    assert.ok(
      r.changes.some((n) => re.test(n)),
      r.changes.join("\n"),
    );
  has(/set net\.ipv4\.ip_forward=1 .*NAT and forwards route through the host/);
  has(/iptables-nft accept rule .* in FORWARD \(iptables-nft \(policy DROP on FORWARD\) drops/);
  has(/iptables-legacy accept rule .* in FORWARD/);
  has(/run dnsmasq on /);
  has(/nftables table ip qnet-/);
});

test("a second run changes nothing and journals nothing", async () => {
  const before = Journal.read(stateDir).length;
  const r = await applyServices(ctx);
  assert.deepEqual(r, { changed: false, changes: [] });
  assert.equal(Journal.read(stateDir).length, before);
});

test("DHCP: each VM gets exactly its planned address, the gateway as router and DNS", async () => {
  for (const vm of ["vm0", "vm1"] as const) {
    const lease = await dhcp(NS[vm]);
    assert.deepEqual(lease, { ip: nicOf(vm).ip, router: net.gateway, dns: net.gateway });
  }
  const leases = readFileSync(dnsmasqPaths(stateDir, "lan").leasefile, "utf8");
  assert.match(
    leases,
    new RegExp(`${nicOf("vm0").mac} ${nicOf("vm0").ip!.replaceAll(".", "\\.")} vm0`),
  );
});

test("DNS: VMs resolve each other as <vm> and <vm>.<lab>; lab names never leave", async () => {
  for (const name of ["vm1", `vm1.${LAB}`]) {
    const r = await sh(inNs(NS.vm0, [BB, "nslookup", name, net.gateway!]));
    assert.match(
      r.stdout,
      new RegExp(`Address:\\s+${nicOf("vm1").ip!.replaceAll(".", "\\.")}\\b`),
      r.stdout,
    );
  }
  const r = await sh(inNs(NS.vm0, [BB, "nslookup", `nope.${LAB}`, net.gateway!]), {
    reject: false,
  });
  assert.match(r.stdout + r.stderr, /NXDOMAIN|can't find/i);
});

test("dnsmasq listens on the bridge only", async () => {
  const pid = readFileSync(dnsmasqPaths(stateDir, "lan").pidfile, "utf8").trim();
  const socks = (await sh(inNs(NS.lab, ["ss", "-H", "-lnup", "-lntp"]))).stdout
    .split("\n")
    .filter((l) => l.includes(`pid=${pid},`));
  const locals = socks.map((l) => l.trim().split(/\s+/)[4]!);
  assert.ok(locals.includes(`${net.gateway}:53`), locals.join(" "));
  assert.ok(locals.includes(`0.0.0.0%${net.bridge}:67`), locals.join(" "));
  for (const a of locals) {
    // The gateway, the bridge's own IPv6 link-local, or a socket pinned to the bridge: nothing else.
    assert.ok(
      a === `${net.gateway}:53` ||
        a.endsWith(`%${net.bridge}:53`) ||
        a === `0.0.0.0%${net.bridge}:67`,
      `dnsmasq socket outside the bridge: ${a}`,
    );
  }
});

test("NAT: a VM reaches the internet namespace through the lab's default route (FORWARD policy DROP)", async () => {
  const r = await wget(NS.vm0, `http://${INET_IP}/`);
  assert.equal(r.stdout, "internet-page", r.stderr);
});

test("forwards: 127.0.0.1:8080 from the lab namespace, and the bind address from a LAN host", async () => {
  const local = await wget(NS.lab, "http://127.0.0.1:8080/");
  assert.equal(local.stdout, "vm0-page", local.stderr);
  const lan = await wget(NS.lan, `http://${LAB_LAN_IP}:8081/`);
  assert.equal(lan.stdout, "vm0-page", lan.stderr);
  // The loopback forward is not open to other hosts on the LAN address.
  const wrong = await wget(NS.lan, `http://${LAB_LAN_IP}:8080/`);
  assert.notEqual(wrong.stdout, "vm0-page");
});

test("a dead dnsmasq is restarted", async () => {
  const p = dnsmasqPaths(stateDir, "lan");
  const pid = Number(readFileSync(p.pidfile, "utf8"));
  process.kill(pid, "SIGKILL");
  for (
    let i = 0;
    i < 100 &&
    (() => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    })();
    i++
  ) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const r = await applyServices(ctx);
  assert.deepEqual(r.changes.length, 1, r.changes.join("\n"));
  assert.match(r.changes[0]!, /^run dnsmasq .*\(not running/);
  assert.notEqual(Number(readFileSync(p.pidfile, "utf8")), pid);
  assert.equal((await dhcp(NS.vm1)).ip, nicOf("vm1").ip);
});

test("nat: false: the same VM (default route kept) can no longer reach the internet; forwards still work", async () => {
  const r = await applyServices({ ...ctx, lab: noNat });
  assert.equal(r.changed, true);
  const blocked = await wget(NS.vm0, `http://${INET_IP}/`);
  assert.notEqual(blocked.stdout, "internet-page");
  // No router is offered any more.
  assert.equal((await dhcp(NS.vm1)).router, "-");
  const lan = await wget(NS.lan, `http://${LAB_LAN_IP}:8081/`);
  assert.equal(lan.stdout, "vm0-page", lan.stderr);
});

test("the accept rules are what lets traffic through the DROP policy, and a re-run restores them", async () => {
  for (const e of Journal.read(stateDir)) {
    const u = e.undo;
    if (u.kind === "iptables-rule")
      await sh(inNs(NS.lab, [u.bin, "-w", "-D", u.chain, ...u.spec]), { reject: false });
  }
  const blocked = await wget(NS.lan, `http://${LAB_LAN_IP}:8081/`);
  assert.notEqual(blocked.stdout, "vm0-page");
  const r = await applyServices({ ...ctx, lab: noNat });
  assert.ok(
    r.changes.some((n) => /accept rule/.test(n)),
    r.changes.join("\n"),
  );
  assert.ok(
    r.changes.every((n) => /accept rule/.test(n)),
    r.changes.join("\n"),
  );
  const lan = await wget(NS.lan, `http://${LAB_LAN_IP}:8081/`);
  assert.equal(lan.stdout, "vm0-page", lan.stderr);
});

test("down: rulesets and ip_forward byte-identical to before, dnsmasq gone", async () => {
  const pid = Number(readFileSync(dnsmasqPaths(stateDir, "lan").pidfile, "utf8"));
  const res = await downLab({ stateDir, runner: ctx.runner });
  assert.deepEqual(res.errors, []);
  assert.deepEqual(await firewallState(), snapshot);
  // Gone, or a zombie its reaper has not collected yet: either way dnsmasq no longer runs.
  assert.equal(pidAlive(pid), false, `dnsmasq ${pid} still runs`);
});
