// Status addresses: guest interfaces matched to the lab's NICs by MAC; a silent agent gives up in time.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { describeAddresses, matchNics, vmAddresses } from "../../src/lab/vm-addresses.js";
import { compile } from "../helpers/topology.js";

const LAB = `
name: t
networks:
  lan: { type: bridge, subnet: 10.9.0.0/24 }
  out: { type: bridge, subnet: 10.8.0.0/24 }
vms:
  vm0: { nics: [{ network: lan, mac: "52:54:00:AA:00:01" }, { network: out, mac: "52:54:00:aa:00:02" }] }
`;

test("guest interfaces are matched to NICs by MAC (any case); IPv6 and unknown interfaces are left out", () => {
  const vm = compile(LAB).lab.vms[0]!;
  const nics = matchNics(vm, [
    {
      name: "lo",
      mac: "00:00:00:00:00:00",
      addresses: [{ ip: "127.0.0.1", prefix: 8, family: "ipv4" }],
    },
    {
      name: "eth1",
      mac: "52:54:00:aa:00:01",
      addresses: [
        { ip: "10.9.0.7", prefix: 24, family: "ipv4" },
        { ip: "fe80::1", prefix: 64, family: "ipv6" },
      ],
    },
  ]);
  assert.deepEqual(
    nics.map((n) => [n.nic, n.network, n.ifname, n.ipv4]),
    [
      [0, "lan", "eth1", ["10.9.0.7/24"]],
      [1, "out", null, []],
    ],
  );
  assert.equal(describeAddresses(nics), "lan 10.9.0.7/24, out no IPv4");
});

test("an agent socket that accepts but never answers gives 'agent not answering' within the timeout", async () => {
  const dir = mkdtempSync(join(tmpdir(), "qnt-vmaddr-"));
  mkdirSync(join(dir, "vm"));
  const conns: Socket[] = [];
  const server = createServer((c) => conns.push(c));
  await new Promise<void>((r) => server.listen(join(dir, "vm", "vm0.qga"), r));
  try {
    const vm = compile(LAB).lab.vms[0]!;
    const t0 = Date.now();
    const r = await vmAddresses(dir, vm, 800);
    const took = Date.now() - t0;
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.reason, /^agent not answering/);
    assert.ok(took < 3_000, `took ${took} ms`);
  } finally {
    for (const c of conns) c.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("no agent socket at all: not answering, no exception", async () => {
  const dir = mkdtempSync(join(tmpdir(), "qnt-vmaddr-"));
  try {
    const r = await vmAddresses(dir, compile(LAB).lab.vms[0]!, 300);
    assert.equal(r.ok, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
