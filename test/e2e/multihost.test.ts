// One lab over three hosts joined by kernel VXLAN, each host a network namespace on this machine, joined
// through an "underlay" namespace. Each host runs `qnet up FILE --host hN --netns hN --state-dir <own>`
// with real QEMU guests, dnsmasq (on h1, the home), bridges, VXLAN devices and FDB entries.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO_ROOT } from "../helpers/golden.js";
import { compile } from "../helpers/topology.js";
import {
  hostSnapshot,
  leftovers,
  pidsMatching,
  qnetWith,
  sleepMs,
  vmPid,
} from "./helpers/host-state.js";
import { sh } from "./helpers/netns.js";
import { makeUnderlay, qnetAsync, type Underlay } from "./helpers/underlay.js";

const FILE = join(REPO_ROOT, "test", "fixtures", "multihost", "three-hosts.yaml");
const LAB = "span";
const { lab } = compile(readFileSync(FILE, "utf8"), FILE);
const ipOf = (vm: string, net: string) =>
  lab.vms.find((v) => v.name === vm)!.nics.find((n) => n.network === net)!.ip!;
const spanOf = (net: string) => {
  const n = lab.networks.find((x) => x.name === net)!;
  assert.ok(n.type === "bridge" && n.span);
  return n.span;
};

interface Obj {
  kind: string;
  name: string;
  state: string;
  detail: string;
}

describe("a lab over three hosts (VXLAN between network namespaces)", () => {
  let ul: Underlay;
  const roots = [1, 2, 3].map(() => mkdtempSync(join(tmpdir(), "qnet-mh-")));
  const root = (i: number) => roots[i - 1]!;
  const snaps: ReturnType<typeof hostSnapshot>[] = [];
  const q = (i: number, args: string[], env: Record<string, string> = {}) =>
    qnetWith(root(i), args, env);
  const upArgs = (i: number) => ["up", FILE, "--host", `h${i}`, "--netns", ul.host(i)];
  const exec = (i: number, vm: string, ...argv: string[]) =>
    q(i, ["exec", LAB, vm, "--timeout", "30", "--", ...argv]);
  const status = (i: number): { ok: boolean; objects: Obj[]; peers?: Record<string, string>[] } =>
    JSON.parse(q(i, ["status", LAB, "--json"]).stdout);
  const planned = (i: number) => {
    const r = q(i, ["plan", FILE, "--host", `h${i}`, "--netns", ul.host(i), "--json"]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout).changes as { what: string; kind: string; object: string }[];
  };
  const pingOk = (i: number, vm: string, to: string) => {
    const r = exec(i, vm, "ping", "-c1", "-W3", to);
    assert.equal(r.status, 0, `${vm} -> ${to}: ${r.stdout}${r.stderr}`);
  };

  before(() => {
    ul = makeUnderlay(`qnt-mh-${process.pid}`, 3);
    for (const i of [1, 2, 3]) snaps.push(hostSnapshot(ul.host(i)));
  });
  after(() => {
    for (const i of [1, 2, 3]) q(i, ["down", LAB]);
    ul.cleanup();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  test("without --host, qnet picks the host whose underlay address is local, or says to choose", () => {
    const r = qnetWith(root(2), ["plan", FILE, "--netns", ul.host(2), "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const changes = JSON.parse(r.stdout).changes as { what: string }[];
    const whats = changes.map((c) => c.what);
    assert.ok(
      whats.some((w) => /^start VM vm2\b/.test(w)),
      whats.join("\n"),
    );
    assert.ok(!whats.some((w) => /VM vm[13]/.test(w)), `only h2's VM:\n${whats.join("\n")}`);
    const none = qnetWith(root(2), ["plan", FILE, "--netns", ul.underlay]);
    assert.equal(none.status, 2);
    assert.match(
      none.stderr,
      /none of their underlay addresses is on network namespace .*\n.*pass --host NAME \(hosts: h1 10\.200\.0\.1, h2 10\.200\.0\.2, h3 10\.200\.0\.3\)/,
    );
    const wrong = qnetWith(root(2), ["plan", FILE, "--host", "h1", "--netns", ul.host(2)]);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /host h1's underlay address 10\.200\.0\.1 is on no interface here/);
  });

  test("the hosts come up in any order: h3 first, then h1 and h2 at once", async () => {
    const h3 = await qnetAsync(root(3), upArgs(3)).done;
    assert.equal(h3.status, 0, h3.stderr);
    const [h1, h2] = await Promise.all([1, 2].map((i) => qnetAsync(root(i), upArgs(i)).done));
    assert.equal(h1!.status, 0, h1!.stderr);
    assert.equal(h2!.status, 0, h2!.stderr);
    // One state directory holds one host's part: another host's up there is refused, changing nothing.
    const other = q(3, ["up", FILE, "--host", "h1", "--netns", ul.host(1)]);
    assert.equal(other.status, 2);
    assert.match(other.stderr, /lab span under .* is host h3's part, not host h1's/);
    for (const i of [1, 2, 3]) {
      assert.deepEqual(planned(i), [], `h${i}: plan right after up`);
      const s = status(i);
      assert.equal(s.ok, true, JSON.stringify(s.objects.filter((o) => o.state !== "present")));
    }
    // h2's part: both networks' bridges and VXLAN devices (dstport 4789, nolearning), two peers on lan.
    const links = JSON.parse(sh(["ip", "-n", ul.host(2), "-json", "-details", "link", "show"]));
    for (const net of ["lan", "back"]) {
      const span = spanOf(net);
      const vx = links.find((l: { ifname: string }) => l.ifname === span.device);
      assert.ok(vx, `no ${span.device}`);
      assert.equal(vx.linkinfo.info_data.id, span.vni);
      assert.equal(vx.linkinfo.info_data.port, 4789);
      assert.equal(vx.linkinfo.info_data.learning, false);
      assert.equal(vx.mtu, 1450);
    }
    const fdb = JSON.parse(sh(["bridge", "-n", ul.host(2), "-json", "fdb", "show"])) as {
      mac: string;
      ifname: string;
      dst?: string;
    }[];
    const floods = (dev: string) =>
      fdb
        .filter((e) => e.ifname === dev && e.mac === "00:00:00:00:00:00")
        .map((e) => e.dst)
        .sort();
    assert.deepEqual(floods(spanOf("lan").device), ["10.200.0.1", "10.200.0.3"]);
    assert.deepEqual(floods(spanOf("back").device), ["10.200.0.3"]);
    // Only h1, the home of lan, carries its gateway and DHCP/DNS.
    assert.match(sh(["ip", "-n", ul.host(1), "-4", "addr"]), /10\.20\.0\.1\/24/);
    assert.doesNotMatch(sh(["ip", "-n", ul.host(2), "-4", "addr"]), /10\.20\.0\./);
    assert.equal(pidsMatching(`${root(2)}/${LAB}/dnsmasq`).length, 0);
    assert.equal(pidsMatching(`${root(1)}/${LAB}/dnsmasq`).length, 1);
  });

  test("VMs on different hosts ping each other by address and by name (DNS from h1)", () => {
    pingOk(2, "vm2", "vm1");
    pingOk(3, "vm3", "vm2");
    pingOk(1, "vm1", ipOf("vm3", "lan"));
    pingOk(3, "vm3", `vm1.${LAB}`);
    // back spans h2 and h3 only, with static addresses and no gateway.
    pingOk(2, "vm2", ipOf("vm3", "back"));
  });

  test("the guests get the overlay's MTU: DHCP option 26 from h1's dnsmasq, the kernel line on back", () => {
    const links = exec(2, "vm2", "ip", "-o", "link").stdout;
    const mtus = [...links.matchAll(/ (eth\d): .* mtu (\d+) /g)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(mtus.sort(), ["eth0 1450", "eth1 1450"]);
    const dhcp = exec(2, "vm2", "cat", "/run/qnet/dhcp-mtu-eth0");
    assert.equal(dhcp.stdout.trim(), "1450", "option 26 as udhcpc received it");
  });

  test("a 1400-byte ping with DF passes across hosts; an oversize one fails with a message", () => {
    /** One ping from host h1 with DF set and `size` bytes of payload. */
    const dfPing = (size: number, vm: string) =>
      sh([
        ...["ip", "netns", "exec", ul.host(1), "ping", "-c1", "-W3", "-M", "do"],
        ...["-s", String(size), ipOf(vm, "lan")],
      ]);
    const ok = dfPing(1400, "vm3");
    assert.match(ok, /1 received/);
    const full = dfPing(1422, "vm2");
    assert.match(full, /1 received/, "1450 bytes: the overlay's full size");
    let err = "";
    try {
      dfPing(1423, "vm3");
      assert.fail("an oversize DF ping passed");
    } catch (e) {
      err = String((e as { stderr?: string }).stderr ?? e);
    }
    assert.match(err, /message too long, mtu=1450|frag needed/i);
  });

  test("check, given every host's part, passes across hosts, full-size DF packets included", () => {
    const r = q(1, ["check", LAB, "--part", root(2), "--part", root(3), "--json"]);
    const report = JSON.parse(r.stdout);
    const bad = report.pairs.filter((p: { status: string }) => p.status !== "pass");
    assert.equal(r.status, 0, JSON.stringify(bad, null, 1));
    const ids = report.pairs.map((p: { id: string }) => p.id);
    for (const id of [
      "vm2>vm1@lan",
      "vm3>vm1@lan:name",
      "vm3>vm2@back:full-size",
      "vm2>gateway@lan",
      "h1>vm3@lan:full-size",
    ])
      assert.ok(ids.includes(id), `${id} in ${ids.join(" ")}`);
  });

  test("check finds a guest whose MTU exceeds the overlay's (the silent black hole)", () => {
    assert.equal(exec(3, "vm3", "ip", "link", "set", "eth0", "mtu", "1500").status, 0);
    try {
      const r = q(3, ["check", LAB, "--json"]);
      assert.equal(r.status, 1);
      const p = JSON.parse(r.stdout).pairs.find(
        (x: { id: string }) => x.id === "vm3>vm1@lan:full-size",
      );
      assert.equal(p.status, "fail");
      assert.match(p.detail, /has MTU 1500, but the overlay carries 1450/);
    } finally {
      exec(3, "vm3", "ip", "link", "set", "eth0", "mtu", "1450");
    }
  });

  test("status shows which peers' VTEPs answer", () => {
    const peers = status(2).peers!;
    assert.deepEqual(
      peers.map((p) => [p.host, p.vtep]),
      [
        ["h1", "answers"],
        ["h3", "answers"],
      ],
    );
  });

  for (const d of [
    {
      name: "an FDB entry deleted",
      inject: () =>
        sh([
          "bridge",
          "-n",
          ul.host(2),
          "fdb",
          "del",
          "00:00:00:00:00:00",
          "dev",
          spanOf("lan").device,
          "dst",
          "10.200.0.3",
          "self",
        ]),
      expect: [`fdb ${spanOf("lan").device} 10.200.0.3`],
    },
    {
      name: "a VXLAN device detached from its bridge",
      inject: () =>
        sh(["ip", "-n", ul.host(2), "link", "set", "dev", spanOf("back").device, "nomaster"]),
      expect: [`vxlan ${spanOf("back").device}`],
    },
    {
      name: "a VXLAN device deleted (its FDB entries go with it)",
      inject: () => sh(["ip", "-n", ul.host(2), "link", "del", spanOf("lan").device]),
      expect: [
        `vxlan ${spanOf("lan").device}`,
        `fdb ${spanOf("lan").device} 10.200.0.1`,
        `fdb ${spanOf("lan").device} 10.200.0.3`,
      ],
    },
  ]) {
    test(`drift on h2, ${d.name}: status names exactly what plan changes, up repairs exactly that`, () => {
      const vm = vmPid(root(2), LAB, "vm2");
      d.inject();
      sleepMs(200);
      const bad = status(2)
        .objects.filter((o) => o.state !== "present")
        .map((o) => `${o.kind} ${o.name}`)
        .sort();
      assert.deepEqual(bad, [...d.expect].sort());
      assert.deepEqual([...new Set(planned(2).map((c) => `${c.kind} ${c.object}`))].sort(), bad);
      const whats = planned(2).map((c) => c.what);
      const up = q(2, upArgs(2));
      assert.equal(up.status, 0, up.stderr);
      assert.deepEqual(
        up.stdout
          .split("\n")
          .filter((l) => l.startsWith("  + "))
          .map((l) => l.slice(4)),
        whats,
      );
      assert.deepEqual(planned(2), []);
      assert.equal(vmPid(root(2), LAB, "vm2"), vm, "vm2 kept running");
      pingOk(2, "vm2", "vm3");
    });
  }

  test("down of h3 removes only its part: h1 and h2 keep working, status says h3's VTEP is gone", () => {
    const r = q(3, ["down", LAB, "--host", "h3"]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(leftovers(root(3), LAB), []);
    assert.deepEqual(hostSnapshot(ul.host(3)), snaps[2]);
    pingOk(2, "vm2", "vm1");
    pingOk(1, "vm1", ipOf("vm2", "lan"));
    const peers = status(1).peers!;
    assert.deepEqual(
      peers.map((p) => [p.host, p.vtep]),
      [
        ["h2", "answers"],
        ["h3", "no-vtep"],
      ],
    );
    assert.equal(status(2).ok, true, "h2's own part stays healthy");
  });

  test("h3 joins again and reaches the others", () => {
    const r = q(3, upArgs(3));
    assert.equal(r.status, 0, r.stderr);
    pingOk(3, "vm3", "vm1");
    pingOk(3, "vm3", ipOf("vm2", "back"));
  });

  test("down everywhere leaves every namespace as it was", () => {
    for (const i of [2, 1, 3]) {
      const r = q(i, ["down", LAB]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(leftovers(root(i), LAB), [], `h${i}`);
      assert.deepEqual(hostSnapshot(ul.host(i)), snaps[i - 1], `h${i}`);
    }
  });

  test("SIGKILL during h2's up (at each kind of step), then down there, leaves nothing", async () => {
    const ns = ul.host(2);
    const points: string[] = [];
    // Journal entries: the links of one batch (bridges, taps, VXLAN devices), the sysctls, the VM.
    for (const k of ["1", "7", "10"]) {
      const r = q(2, upArgs(2), { QNET_KILL_AFTER: k });
      assert.equal(r.signal, "SIGKILL", `K=${k}: up was not killed (exit ${r.status}) ${r.stderr}`);
      points.push(`after journal entry ${k}`);
      const down = q(2, ["down", LAB]);
      assert.equal(down.status, 0, `K=${k}: ${down.stderr}`);
      assert.deepEqual(leftovers(root(2), LAB), [], `K=${k}`);
      assert.deepEqual(hostSnapshot(ns), snaps[1], `K=${k}`);
    }
    // While the guest boots: the VXLAN device, its FDB entries and QEMU exist, up waits for the agent.
    const run = qnetAsync(root(2), upArgs(2));
    const t0 = Date.now();
    while (vmPid(root(2), LAB, "vm2") === null && Date.now() - t0 < 60_000) sleepMs(100);
    assert.ok(vmPid(root(2), LAB, "vm2"), "QEMU started");
    process.kill(run.pid, "SIGKILL");
    assert.equal((await run.done).signal, "SIGKILL");
    points.push("while the guest boots");
    const down = q(2, ["down", LAB]);
    assert.equal(down.status, 0, down.stderr);
    assert.deepEqual(leftovers(root(2), LAB), []);
    assert.deepEqual(hostSnapshot(ns), snaps[1]);
    console.log(`# multi-host: SIGKILL ${points.join(", ")}: nothing left`);
  });
});
