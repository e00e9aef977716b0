// Instant start for real: VMs of the built-in guest restored from a booted template get their own identity
// (MAC, address, hostname, clock), work like cold-booted ones, and fall back to a cold boot when the
// template fails; --cold and ineligible layouts boot cold. A private cache keeps the shared one untouched.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO_ROOT } from "../helpers/golden.js";
import { leftovers, qnetWith } from "./helpers/host-state.js";
import { addNetns, delNetns, qemuPids } from "./helpers/netns.js";

const ns = `qnt-inst-${process.pid}`;
const root = mkdtempSync(join(tmpdir(), "qnet-inst-"));
const cache = mkdtempSync(join(tmpdir(), "qnet-inst-cache-"));
const env = { XDG_CACHE_HOME: cache };
const qnet = (args: string[], extra: Record<string, string> = {}) =>
  qnetWith(root, args, { ...env, ...extra });
const PRIVATE = join(REPO_ROOT, "examples", "private-lan.yaml");
const templates = () => join(cache, "qnet", "templates");

interface VmObj {
  kind: string;
  name: string;
  state: string;
  detail: string;
  boot?: { mode: string; reason: string | null } | null;
}
const vms = (lab: string): VmObj[] =>
  JSON.parse(qnet(["status", lab, "--json"]).stdout).objects.filter((o: VmObj) => o.kind === "vm");

describe("instant start from a template", () => {
  before(() => addNetns(ns));
  after(() => {
    for (const lab of ["lab", "mix"]) qnet(["down", lab]);
    delNetns(ns);
    rmSync(root, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  });

  test("the first up makes one template for both VMs and restores them from it", () => {
    const r = qnet(["up", PRIVATE, "--netns", ns, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.deepEqual(
      res.vms.map((v: { name: string; boot: { mode: string } }) => [v.name, v.boot.mode]),
      [
        ["vm0", "template"],
        ["vm1", "template"],
      ],
    );
    const made = readdirSync(templates());
    assert.equal(made.length, 1, `one template, no half-made one: ${made.join(" ")}`);
    const ram = statSync(join(templates(), made[0]!, "ram"));
    assert.equal(ram.size, 256 * 1024 * 1024);
    assert.ok(ram.blocks * 512 < ram.size, "the RAM file is sparse");
    assert.ok(existsSync(join(templates(), made[0]!, "state")));
    for (const o of vms("lab")) assert.match(o.detail, /started from a template/);
  });

  test("each restored VM is itself: MAC, address, hostname, a clock set to now; they reach each other", () => {
    for (const [vm, ip, peer, mac] of [
      ["vm0", "10.0.2.2", "10.0.2.3", "52:54:00:12:34:56"],
      ["vm1", "10.0.2.3", "10.0.2.2", "52:54:00:12:34:57"],
    ] as const) {
      const r = qnet([
        "exec",
        "lab",
        vm,
        "--",
        "sh",
        "-c",
        "hostname; cat /sys/class/net/eth0/address; ip -o -4 addr show dev eth0; date +%s",
      ]);
      assert.equal(r.status, 0, r.stderr);
      const [host, gotMac, addr, clock] = r.stdout.trim().split("\n");
      assert.equal(host, vm);
      assert.equal(gotMac, mac);
      assert.match(addr!, new RegExp(`inet ${ip.replaceAll(".", "\\.")}/24`));
      assert.ok(Math.abs(Number(clock) - Date.now() / 1000) < 30, `guest clock ${clock}`);
      const p = qnet(["exec", "lab", vm, "--", "ping", "-c1", "-W3", peer]);
      assert.equal(p.status, 0, p.stdout + p.stderr);
    }
    const host = execFileSync("ip", ["netns", "exec", ns, "ping", "-c1", "-W3", "10.0.2.2"]);
    assert.match(String(host), /1 received/);
  });

  test("a VM whose QEMU died is restored again by up; the other keeps running", () => {
    const before_ = qemuPids("lab");
    const pid = Number(
      execFileSync("cat", [join(root, "lab", "vm", "vm1.pid")], { encoding: "utf8" }),
    );
    process.kill(pid, "SIGKILL");
    const r = qnet(["up", PRIVATE, "--netns", ns]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /VM vm1: ready \(from a template/);
    const after_ = qemuPids("lab");
    assert.ok(after_.includes(before_.find((p) => p !== pid)!), "vm0 kept its QEMU");
    assert.equal(qnet(["exec", "lab", "vm1", "--", "ping", "-c1", "-W3", "vm0"]).status, 0);
  });

  test("a broken template falls back to a cold boot, says why, and the VM works", () => {
    assert.equal(qnet(["down", "lab"]).status, 0);
    const dir = join(templates(), readdirSync(templates())[0]!);
    truncateSync(join(dir, "state"), 1000);
    const r = qnet(["up", PRIVATE, "--netns", ns, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    for (const v of JSON.parse(r.stdout).vms) {
      assert.equal(v.boot.mode, "cold");
      assert.match(v.boot.reason, /the template did not work/);
    }
    assert.equal(qnet(["exec", "lab", "vm0", "--", "ping", "-c1", "-W3", "vm1"]).status, 0);
    assert.equal(existsSync(dir), false, "the broken template is dropped, to be made anew");
    assert.equal(qnet(["down", "lab"]).status, 0);
  });

  test("--cold, QNET_BOOT=cold and an e1000 VM boot cold; each says why", () => {
    let r = qnet(["up", PRIVATE, "--netns", ns, "--cold", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      JSON.parse(r.stdout).vms.map((v: { boot: { reason: string } }) => v.boot.reason),
      ["--cold", "--cold"],
    );
    assert.equal(qnet(["down", "lab"]).status, 0);
    const file = join(root, "mix.yaml");
    writeFileSync(
      file,
      "name: mix\nnetworks:\n  lan: { type: bridge, subnet: 10.9.0.0/24 }\nvms:\n  a: { nics: [{ network: lan, model: e1000 }] }\n  b: { nics: [{ network: lan }] }\n",
    );
    r = qnet(["up", file, "--netns", ns, "--json"], { QNET_BOOT: "" });
    assert.equal(r.status, 0, r.stderr);
    const boot = Object.fromEntries(
      JSON.parse(r.stdout).vms.map(
        (v: { name: string; boot: { mode: string; reason: string } }) => [v.name, v.boot],
      ),
    );
    assert.equal(boot.a.mode, "cold");
    assert.match(boot.a.reason, /NIC model e1000/);
    assert.equal(boot.b.mode, "template");
    assert.equal(qnet(["exec", "mix", "a", "--", "ping", "-c1", "-W3", "b"]).status, 0);
    assert.equal(qnet(["down", "mix"]).status, 0);
  });

  test("killed while the template boots, then down: no QEMU, no half-made template, no state", () => {
    rmSync(templates(), { recursive: true, force: true });
    const journal = () =>
      execFileSync("cat", [join(root, "lab", "journal.jsonl")], { encoding: "utf8" });
    // Find the journal entry that starts the template's QEMU, then kill right after it.
    const probe = qnet(["up", PRIVATE, "--netns", ns]);
    assert.equal(probe.status, 0, probe.stderr);
    const lines = journal().trim().split("\n");
    const k = lines.findIndex((l) => l.includes("boot VM template")) + 1;
    assert.ok(k > 0, "the template's QEMU is journaled");
    assert.equal(qnet(["down", "lab"]).status, 0);
    rmSync(templates(), { recursive: true, force: true });
    const killed = qnet(["up", PRIVATE, "--netns", ns], { QNET_KILL_AFTER: String(k) });
    assert.equal(killed.signal, "SIGKILL");
    assert.equal(qnet(["down", "lab"]).status, 0);
    assert.deepEqual(leftovers(root, "lab"), []);
    assert.deepEqual(
      readdirSync(templates()).filter((d) => d.includes(".tmp-")),
      [],
      "no half-made template",
    );
    const tpl = spawnSync("pgrep", ["-f", templates()], { encoding: "utf8" }).stdout.trim();
    assert.equal(tpl, "", "no template QEMU left");
  });
});
