// Security defaults with real tools: loopback-bound forwards, dnsmasq only on lab bridges, private state, lab isolation.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO_ROOT } from "../helpers/golden.js";
import { runCli } from "../helpers/topology.js";
import {
  hostSnapshot,
  leftovers,
  qnetWith,
  readPid,
  sleepMs,
  statusOf,
  vmPid,
} from "./helpers/host-state.js";
import { addNetns, delNetns, sh, tcpBanner } from "./helpers/netns.js";

const SERVICES = join(REPO_ROOT, "examples", "services.yaml");
const tmp = mkdtempSync(join(tmpdir(), "qnet-sec-files-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

describe("a running lab (services.yaml): exposure and file modes", () => {
  const ns = `qnt-sec-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), "qnet-sec-"));
  const dir = join(root, "svc");

  before(() => {
    addNetns(ns);
    // Another address in the namespace: nothing of the lab may answer there.
    sh(["ip", "-n", ns, "link", "add", "qs0", "type", "veth", "peer", "name", "qs1"]);
    sh(["ip", "-n", ns, "addr", "add", "10.78.0.1/24", "dev", "qs0"]);
    sh(["ip", "-n", ns, "link", "set", "qs0", "up"]);
    sh(["ip", "-n", ns, "link", "set", "qs1", "up"]);
    const r = qnetWith(root, ["up", SERVICES, "--netns", ns]);
    assert.equal(r.status, 0, r.stderr);
  });
  after(() => {
    qnetWith(root, ["down", "svc"]);
    delNetns(ns);
    rmSync(root, { recursive: true, force: true });
  });

  test("the forward's DNAT matches 127.0.0.1 only, and answers there and nowhere else", () => {
    const rules = sh(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", "qnet-svc"]);
    const dnat = rules.split("\n").filter((l) => /dnat to/.test(l));
    assert.equal(dnat.length, 1, rules);
    assert.match(dnat[0]!, /ip daddr 127\.0\.0\.1 tcp dport 8022 dnat to 10\.10\.0\.2:22/);
    assert.doesNotMatch(rules, /prerouting/, "a prerouting DNAT would expose the forward");
    // The built-in guest's SSH server (dropbear) listens on 22: its banner must come through the forward.
    let banner = tcpBanner(ns, "127.0.0.1", 8022);
    for (let i = 0; i < 10 && !banner; i++) {
      sleepMs(500);
      banner = tcpBanner(ns, "127.0.0.1", 8022);
    }
    assert.match(
      banner ?? "",
      /^SSH-2\.0-dropbear/,
      "the forward did not answer on 127.0.0.1:8022",
    );
    assert.equal(tcpBanner(ns, "10.78.0.1", 8022), null, "answered on another address");
    assert.equal(tcpBanner(ns, "10.10.0.1", 8022), null, "answered on the gateway");
  });

  test("dnsmasq's sockets are bound to the lab's bridge or its address only", () => {
    const pid = readPid(join(dir, "dnsmasq-lan.pid"));
    assert.ok(pid, "no dnsmasq pid");
    const bridge = statusOf(root, "svc").objects.find((o) => o.kind === "bridge")!.name;
    const lines = sh(["ip", "netns", "exec", ns, "ss", "-H", "-tulnp"])
      .split("\n")
      .filter((l) => l.includes(`pid=${pid},`));
    assert.ok(lines.length >= 2, "dnsmasq has no sockets");
    for (const l of lines) {
      const local = l.trim().split(/\s+/)[4]!;
      assert.ok(
        local.startsWith("10.10.0.1:") || local.includes(`%${bridge}:`),
        `dnsmasq socket not tied to the lab's bridge: ${l}`,
      );
    }
  });

  test("the state directory is 0700 and the VM sockets 0600, owned by root", () => {
    for (const d of [root, dir, join(dir, "vm")]) {
      const s = statSync(d);
      assert.equal(s.mode & 0o777, 0o700, `${d} mode ${(s.mode & 0o777).toString(8)}`);
      assert.equal(s.uid, 0, d);
    }
    const socks = readdirSync(join(dir, "vm")).filter((f) => /\.(qmp|qga|serial)$/.test(f));
    assert.equal(socks.length, 6, socks.join(" "));
    for (const f of socks) {
      const s = statSync(join(dir, "vm", f));
      assert.ok(s.isSocket(), f);
      assert.equal(s.mode & 0o777, 0o600, `${f} mode ${(s.mode & 0o777).toString(8)}`);
      assert.equal(s.uid, 0, f);
    }
    // Nothing in the state directory is writable by others (dnsmasq makes its log 0660 as nobody:root).
    for (const f of readdirSync(dir)) {
      const m = statSync(join(dir, f)).mode & 0o002;
      assert.equal(m, 0, `${f} is world writable`);
    }
  });
});

describe("forward addresses in what qnet renders (QEMU hostfwd and nft DNAT)", () => {
  test("user networks: hostfwd binds 127.0.0.1 by default, and the given address otherwise", () => {
    const f = file(
      "u.yaml",
      "name: u\nnetworks:\n  n: { type: user, forwards: ['tcp:2222:22', 'udp:10.1.2.3:5353:53'] }\nvms:\n  vm: { nics: [{ network: n }] }\n",
    );
    const r = runCli(["args", f, "vm"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /hostfwd=tcp:127\.0\.0\.1:2222-:22/);
    assert.match(r.stdout, /hostfwd=udp:10\.1\.2\.3:5353-:53/);
    assert.doesNotMatch(r.stdout, /hostfwd=tcp::|hostfwd=tcp:0\.0\.0\.0/);
  });

  test("bridge networks: the DNAT names 127.0.0.1 by default, and the given address otherwise", async () => {
    const { compile } = await import("../helpers/topology.js");
    const { renderNftRuleset } = await import("../../src/render/nftables.js");
    const c = compile(
      "name: b\nnetworks:\n  n: { type: bridge, subnet: 10.9.0.0/24, forwards: ['tcp:2222:vm:22', 'tcp:10.1.2.3:8080:vm:80'] }\nvms:\n  vm: { nics: [{ network: n }] }\n",
    );
    const text = renderNftRuleset(c.lab, { defaultUplink: null })!;
    assert.match(text, /ip daddr 127\.0\.0\.1 tcp dport 2222 dnat to/);
    assert.match(text, /ip daddr 10\.1\.2\.3 tcp dport 8080 dnat to/);
    for (const l of text.split("\n").filter((x) => /dnat to/.test(x)))
      assert.match(l, /ip daddr \d/, `a DNAT without a destination address: ${l}`);
  });
});

/** Two labs in one namespace; `down` of the first (whose name prefixes the other's) leaves the second whole. */
function isolation(a: string, b: string, subnets: [string, string], ports: [number, number]) {
  describe(`labs "${a}" and "${b}" in one namespace: down of ${a} leaves ${b} healthy`, () => {
    const ns = `qnt-sec-${a}-${process.pid}`;
    const root = mkdtempSync(join(tmpdir(), "qnet-sec-iso-"));
    let snap: ReturnType<typeof hostSnapshot>;
    const lab = (name: string, subnet: string, port: number) =>
      file(
        `${name}.yaml`,
        `name: ${name}\nnetworks:\n  lan: { type: bridge, subnet: ${subnet}, nat: true, forwards: ['tcp:${port}:vm0:22'] }\nvms:\n  vm0: { nics: [{ network: lan }] }\n  b-vm0: { nics: [{ network: lan }] }\n`,
      );

    before(() => {
      addNetns(ns);
      snap = hostSnapshot(ns);
      for (const [name, subnet, port] of [
        // a first: it turns ip_forward on and journals it; its down must hand that over to b.
        [a, subnets[0], ports[0]],
        [b, subnets[1], ports[1]],
      ] as const) {
        const r = qnetWith(root, ["up", lab(name, subnet, port), "--netns", ns]);
        assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      }
    });
    after(() => {
      qnetWith(root, ["down", a]);
      qnetWith(root, ["down", b]);
      delNetns(ns);
      rmSync(root, { recursive: true, force: true });
    });

    test(`down ${a}: ${b}'s links, table, dnsmasq, VMs and ip_forward are untouched`, () => {
      assert.equal(statusOf(root, a).ok, true);
      assert.equal(statusOf(root, b).ok, true);
      const pidsB = [
        vmPid(root, b, "vm0"),
        vmPid(root, b, "b-vm0"),
        readPid(join(root, b, "dnsmasq-lan.pid")),
      ];
      assert.ok(
        pidsB.every((p) => p !== null),
        String(pidsB),
      );
      const r = qnetWith(root, ["down", a]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(leftovers(root, a), []);
      const s = statusOf(root, b);
      assert.equal(s.ok, true, JSON.stringify(s.objects.filter((o) => o.state !== "present")));
      assert.deepEqual(
        [vmPid(root, b, "vm0"), vmPid(root, b, "b-vm0"), readPid(join(root, b, "dnsmasq-lan.pid"))],
        pidsB,
      );
      // IPv4 forwarding is shared: it stays on while b needs it (b's NAT), and b's down restores it.
      assert.equal(hostSnapshot(ns).ipForward, "1");
      const ping = qnetWith(root, [
        "exec",
        b,
        "vm0",
        "--",
        "ping",
        "-c1",
        "-W3",
        subnets[1].replace(/0\/24$/, "1"),
      ]);
      assert.equal(ping.status, 0, ping.stdout);
    });

    test(`down ${b} afterwards restores the namespace exactly`, () => {
      assert.equal(qnetWith(root, ["down", b]).status, 0);
      assert.deepEqual(leftovers(root, b), []);
      assert.deepEqual(hostSnapshot(ns), snap);
    });
  });
}

// Lab "a"'s VM "b-vm0" is tagged qnet-a-b-vm0, lab "a-b"'s VM "vm0" qnet-a-b-vm0 too: PIDs are told
// apart by each lab's own pidfile, never by name.
isolation("a", "a-b", ["10.61.0.0/24", "10.62.0.0/24"], [8061, 8062]);
isolation("lab", "lab2", ["10.63.0.0/24", "10.64.0.0/24"], [8063, 8064]);
