// Resolution: derived MACs, allocated IPs and interface names are deterministic, valid and never collide.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { IFNAME_RE } from "../../src/model/names.js";
import { deriveIfname, deriveMac } from "../../src/resolve/names.js";
import { compile } from "../helpers/topology.js";

const MAC_IN_RANGE = /^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/;
const isUnicast = (mac: string) => (Number.parseInt(mac.slice(0, 2), 16) & 1) === 0;

function manyVms(n: number, nicsPerVm = 2): string {
  const vms = Array.from({ length: n }, (_, i) => {
    const nics = Array.from(
      { length: nicsPerVm },
      (_, k) => `{ network: ${k % 2 ? "b" : "a"} }`,
    ).join(", ");
    return `  vm${i}: { nics: [${nics}] }`;
  });
  return `name: big\nnetworks:\n  a: { type: bridge, subnet: 10.1.0.0/16 }\n  b: { type: bridge, subnet: 10.2.0.0/16 }\nvms:\n${vms.join("\n")}\n`;
}

describe("derived MACs", () => {
  test("are deterministic: same inputs, same MAC, every run", () => {
    assert.equal(deriveMac("lab", "vm0", 0, new Set()), deriveMac("lab", "vm0", 0, new Set()));
    const a = compile(manyVms(20)).lab;
    const b = compile(manyVms(20)).lab;
    assert.deepEqual(a, b);
  });
  test("depend on lab, VM and NIC index", () => {
    const base = deriveMac("lab", "vm0", 0, new Set());
    assert.notEqual(deriveMac("lab2", "vm0", 0, new Set()), base);
    assert.notEqual(deriveMac("lab", "vm1", 0, new Set()), base);
    assert.notEqual(deriveMac("lab", "vm0", 1, new Set()), base);
  });
  test("are in 52:54:00:xx:xx:xx, unicast, and unique across 1,000 NICs", () => {
    const { lab } = compile(manyVms(500));
    const macs = lab.vms.flatMap((v) => v.nics.map((n) => n.mac));
    assert.equal(macs.length, 1000);
    for (const mac of macs) {
      assert.match(mac, MAC_IN_RANGE);
      assert.ok(isUnicast(mac), mac);
    }
    assert.equal(new Set(macs).size, macs.length);
  });
  test("on a collision the next free value is taken, deterministically", () => {
    const first = deriveMac("lab", "vm0", 0, new Set());
    const taken = new Set([first]);
    const second = deriveMac("lab", "vm0", 0, taken);
    assert.notEqual(second, first);
    const next = (Number.parseInt(first.slice(9).replaceAll(":", ""), 16) + 1) % 0x1000000;
    assert.equal(second.slice(9).replaceAll(":", ""), next.toString(16).padStart(6, "0"));
    assert.ok(taken.has(second), "the chosen MAC is added to the taken set");
    // A run of taken values is skipped in order; the same taken set gives the same answer.
    const run = new Set([first, second]);
    const third = deriveMac("lab", "vm0", 0, new Set(run));
    assert.equal(third, deriveMac("lab", "vm0", 0, new Set(run)));
    assert.ok(!run.has(third));
  });
  test("wrap around from 52:54:00:ff:ff:ff to 52:54:00:00:00:00", () => {
    // Search (deterministically) for a VM name whose hash lands near the top, then take every value above.
    const value = (mac: string) => Number.parseInt(mac.slice(9).replaceAll(":", ""), 16);
    let vm = "";
    for (let i = 0; !vm; i++) {
      if (0xffffff - value(deriveMac("lab", `vm${i}`, 0, new Set())) < 100_000) vm = `vm${i}`;
    }
    const taken = new Set<string>();
    for (let v = value(deriveMac("lab", vm, 0, new Set())); v <= 0xffffff; v++) {
      taken.add(
        `52:54:00:${[v >>> 16, (v >>> 8) & 255, v & 255].map((b) => b.toString(16).padStart(2, "0")).join(":")}`,
      );
    }
    assert.equal(deriveMac("lab", vm, 0, taken), "52:54:00:00:00:00");
  });
  test("never take a MAC fixed in the file", () => {
    const fixed = deriveMac("lab", "vm1", 0, new Set());
    const { lab } = compile(
      `name: lab\nnetworks:\n  n: { type: bridge, subnet: 10.0.2.0/24 }\nvms:\n  vm0: { nics: [{ network: n, mac: "${fixed.toUpperCase()}" }] }\n  vm1: { nics: [{ network: n }] }\n`,
    );
    const [vm0, vm1] = lab.vms;
    assert.equal(vm0!.nics[0]!.mac, fixed, "a fixed MAC is kept (lower-cased)");
    assert.notEqual(vm1!.nics[0]!.mac, fixed, "the derived MAC moved off the fixed one");
    assert.match(vm1!.nics[0]!.mac, MAC_IN_RANGE);
  });
});

describe("allocated IPs", () => {
  const topo = (net: string, vms: string) =>
    `name: lab\nnetworks:\n  n: { type: bridge, ${net} }\nvms:\n${vms}`;
  const ipsOf = (text: string) =>
    Object.fromEntries(compile(text).lab.vms.map((v) => [v.name, v.nics.map((n) => n.ip)]));

  test("start after the network and gateway addresses, in VM-name then NIC order", () => {
    const text = topo(
      "subnet: 10.0.2.0/24",
      "  b: { nics: [{ network: n }, { network: n }] }\n  a: { nics: [{ network: n }] }\n",
    );
    assert.deepEqual(ipsOf(text), { a: ["10.0.2.2"], b: ["10.0.2.3", "10.0.2.4"] });
  });
  test("skip the gateway wherever it is, and fixed addresses", () => {
    const text = topo(
      "subnet: 10.0.2.0/29, gateway: 10.0.2.2",
      "  a: { nics: [{ network: n }] }\n  b: { nics: [{ network: n }] }\n  c: { nics: [{ network: n, ip: 10.0.2.3 }] }\n  d: { nics: [{ network: n }] }\n",
    );
    // .0 network, .2 gateway, .3 fixed, .7 broadcast
    assert.deepEqual(ipsOf(text), {
      a: ["10.0.2.1"],
      b: ["10.0.2.4"],
      c: ["10.0.2.3"],
      d: ["10.0.2.5"],
    });
  });
  test("a gateway of `none` frees the first address", () => {
    const text = topo(
      "subnet: 10.0.2.0/30, gateway: none, dhcp: false",
      "  a: { nics: [{ network: n }] }\n  b: { nics: [{ network: n }] }\n",
    );
    assert.deepEqual(ipsOf(text), { a: ["10.0.2.1"], b: ["10.0.2.2"] });
  });
  test("fill a subnet exactly, never the broadcast address; one more NIC is a located error", () => {
    const vms = (n: number) =>
      Array.from({ length: n }, (_, i) => `  v${i}: { nics: [{ network: n }] }\n`).join("");
    const full = ipsOf(topo("subnet: 10.0.2.0/29", vms(5)));
    assert.deepEqual(Object.values(full).flat().sort(), [
      "10.0.2.2",
      "10.0.2.3",
      "10.0.2.4",
      "10.0.2.5",
      "10.0.2.6",
    ]);
    assert.throws(
      () => compile(topo("subnet: 10.0.2.0/29", vms(6))),
      (e: Error & { diagnostics?: { path: string; message: string }[] }) =>
        e.diagnostics?.[0]?.path === "networks.n.subnet" &&
        /6 NICs need an address but only 5 are free in 10\.0\.2\.0\/29/.test(
          e.diagnostics[0].message,
        ),
    );
  });
  test("do not depend on the order VMs are written in", () => {
    const a = "  x: { nics: [{ network: n }] }\n  y: { nics: [{ network: n }] }\n";
    const b = "  y: { nics: [{ network: n }] }\n  x: { nics: [{ network: n }] }\n";
    assert.deepEqual(ipsOf(topo("subnet: 10.0.2.0/24", a)), ipsOf(topo("subnet: 10.0.2.0/24", b)));
  });
});

describe("derived interface names", () => {
  test("are at most 15 bytes of [A-Za-z0-9_.-] and unique, for long lab and VM names", () => {
    const long = "x".repeat(63);
    const vms = Array.from(
      { length: 50 },
      (_, i) => `  ${long.slice(0, 60)}${i}: { nics: [{ network: ${long} }, { network: b }] }`,
    ).join("\n");
    const { lab } = compile(
      `name: ${long}\nnetworks:\n  ${long}: { type: bridge, subnet: 10.0.0.0/16 }\n  b: { type: bridged, uplink: eth0 }\nvms:\n${vms}\n`,
    );
    const names = [
      ...lab.networks.flatMap((n) => (n.type === "user" ? [] : [n.bridge])),
      ...lab.vms.flatMap((v) => v.nics.map((n) => n.tap!)),
    ];
    assert.equal(names.length, 2 + 100);
    for (const n of names) {
      assert.ok(Buffer.byteLength(n) <= 15, n);
      assert.match(n, IFNAME_RE);
      assert.match(n, /^[A-Za-z0-9_.-]+$/);
    }
    assert.equal(new Set(names).size, names.length);
  });
  test("never take a name fixed in the file", () => {
    const taken = new Set<string>();
    const derived = deriveIfname("qnbr-", taken, "lab", "b");
    const { lab } = compile(
      `name: lab\nnetworks:\n  a: { type: bridge, subnet: 10.0.2.0/24, bridge: ${derived} }\n  b: { type: bridge, subnet: 10.0.3.0/24 }\nvms: {}\n`,
    );
    const b = lab.networks.find((n) => n.name === "b")!;
    assert.ok(b.type === "bridge");
    assert.notEqual(b.bridge, derived);
    assert.match(b.bridge, /^qnbr-[0-9a-f]{8}$/);
  });
  test("on a collision the next attempt is taken, deterministically", () => {
    const first = deriveIfname("qntap-", new Set(), "lab", "vm0", "0");
    const second = deriveIfname("qntap-", new Set([first]), "lab", "vm0", "0");
    assert.notEqual(first, second);
    assert.equal(second, deriveIfname("qntap-", new Set([first]), "lab", "vm0", "0"));
  });
  test("differ between labs with the same network and VM names", () => {
    const text = (name: string) =>
      `name: ${name}\nnetworks:\n  n: { type: bridge, subnet: 10.0.2.0/24 }\nvms:\n  vm0: { nics: [{ network: n }] }\n`;
    const a = compile(text("lab1")).lab;
    const b = compile(text("lab2")).lab;
    assert.notEqual(a.vms[0]!.nics[0]!.tap, b.vms[0]!.nics[0]!.tap);
    assert.notDeepEqual(a.networks[0], b.networks[0]);
  });
});
