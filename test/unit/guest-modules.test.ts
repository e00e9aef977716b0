// Tests for kernel module resolution: the real Debian modules tree here, and small fake trees.

import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { execa } from "execa";
import { UserError } from "../../src/errors.js";
import {
  decompressModule,
  loadModuleIndex,
  moduleName,
  parseModuleIndex,
  resolveModuleOrder,
  resolveModules,
} from "../../src/guest/modules.js";

/** The installed distribution kernel's modules tree (the running host kernel has none). */
function realModulesDir(): string {
  for (const v of readdirSync("/lib/modules").sort().reverse()) {
    const dir = join("/lib/modules", v);
    if (
      existsSync(join(dir, "modules.dep")) &&
      readFileSync(join(dir, "modules.dep"), "utf8").includes("/virtio_net.ko")
    ) {
      return dir;
    }
  }
  throw new Error("no /lib/modules/<version> with virtio_net: install linux-image-amd64");
}

/** Every module comes after all of its modules.dep dependencies. */
function assertDepsFirst(
  index: Awaited<ReturnType<typeof loadModuleIndex>>,
  order: string[],
): void {
  for (const [i, name] of order.entries()) {
    const path = index.byName.get(name)!;
    for (const dep of index.deps.get(path) ?? []) {
      const j = order.indexOf(moduleName(dep));
      assert.ok(j >= 0 && j < i, `${moduleName(dep)} must load before ${name}: ${order.join(" ")}`);
    }
  }
}

describe("module resolution against the real Debian modules tree", () => {
  const dir = realModulesDir();

  it("virtio-net-pci: virtio transport, net driver and the agent's console, dependencies first", async () => {
    const index = await loadModuleIndex(dir);
    const order = resolveModuleOrder(index, ["virtio-net-pci"], "test");
    for (const m of [
      "virtio_ring",
      "virtio",
      "virtio_pci",
      "failover",
      "net_failover",
      "virtio_net",
      "virtio_console",
    ]) {
      assert.ok(order.includes(m), `${m} in ${order.join(" ")}`);
    }
    assert.ok(order.indexOf("virtio_pci") < order.indexOf("virtio_net"));
    assert.equal(new Set(order).size, order.length, "no module twice");
    assertDepsFirst(index, order);
  });

  it("maps every other supported model to its driver", async () => {
    const index = await loadModuleIndex(dir);
    const cases: Array<[string, string[]]> = [
      ["e1000", ["e1000"]],
      ["e1000e", ["e1000e"]],
      ["rtl8139", ["mii", "8139cp", "8139too"]],
      ["vmxnet3", ["vmxnet3"]],
      ["ne2k_pci", ["8390", "ne2k_pci"]],
      ["pcnet", ["mii", "pcnet32"]],
    ];
    for (const [model, mods] of cases) {
      const order = resolveModuleOrder(index, [model], "test");
      for (const m of mods) assert.ok(order.includes(m), `${model}: ${m} in ${order.join(" ")}`);
      assertDepsFirst(index, order);
    }
  });

  it("returns absolute files that exist, for several models at once without duplicates", async () => {
    const files = await resolveModules(dir, ["virtio-net-pci", "e1000", "virtio-net-pci"], "test");
    assert.equal(new Set(files.map((f) => f.name)).size, files.length);
    for (const f of files) assert.ok(existsSync(f.path), f.path);
    assert.ok(files.some((f) => f.name === "e1000"));
  });
});

describe("module resolution against fake trees", () => {
  const tmp = mkdtempSync(join(tmpdir(), "qnt-guest-modules-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const cloudDep = [
    "kernel/drivers/virtio/virtio_ring.ko:",
    "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
    "",
  ].join("\n");

  it("a kernel without the driver is a UserError naming the model and the kernel", () => {
    const index = parseModuleIndex(cloudDep);
    assert.throws(
      () => resolveModuleOrder(index, ["virtio-net-pci", "e1000"], "vmlinuz-6.1.0-cloud-amd64"),
      (e: unknown) =>
        e instanceof UserError &&
        /e1000/.test(e.message) &&
        /vmlinuz-6\.1\.0-cloud-amd64/.test(e.message),
    );
  });

  it("an unknown NIC model is a UserError listing the supported ones", () => {
    assert.throws(
      () => resolveModuleOrder(parseModuleIndex(cloudDep), ["bogus-nic"], "k"),
      (e: unknown) =>
        e instanceof UserError &&
        /bogus-nic/.test(e.message) &&
        /virtio-net-pci/.test(e.hint ?? ""),
    );
  });

  it("builtin modules need nothing loaded", () => {
    const index = parseModuleIndex(
      "kernel/drivers/net/virtio_net.ko:\nkernel/drivers/char/virtio_console.ko:\n",
      "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio_pci.ko\n",
    );
    assert.deepEqual(resolveModuleOrder(index, ["virtio-net-pci"], "k"), [
      "virtio_net",
      "virtio_console",
    ]);
  });

  it("treats - and _ in module names as the same", () => {
    const index = parseModuleIndex(
      `${cloudDep}kernel/drivers/net/ethernet/8390/8390.ko:\nkernel/drivers/net/ethernet/8390/ne2k-pci.ko: kernel/drivers/net/ethernet/8390/8390.ko\n`,
    );
    const order = resolveModuleOrder(index, ["ne2k_pci"], "k");
    assert.ok(order.indexOf("8390") < order.indexOf("ne2k_pci"), order.join(" "));
  });

  it("finds and decompresses .ko.gz, .ko.xz and .ko.zst modules", async () => {
    const root = join(tmp, "compressed");
    const body = (n: string) => Buffer.from(`\x7fELF fake module ${n} `.repeat(50));
    const plain: Record<string, Buffer> = {};
    const write = (rel: string, data: Buffer) => {
      mkdirSync(join(root, rel, ".."), { recursive: true });
      writeFileSync(join(root, rel), data);
    };
    for (const n of ["virtio_ring", "virtio", "virtio_pci", "virtio_net", "virtio_console"])
      plain[n] = body(n);
    write("kernel/virtio_ring.ko.gz", gzipSync(plain.virtio_ring!));
    write(
      "kernel/virtio.ko.xz",
      Buffer.from((await execa("xz", ["-c"], { input: plain.virtio!, encoding: "buffer" })).stdout),
    );
    write(
      "kernel/virtio_pci.ko.zst",
      Buffer.from(
        (await execa("zstd", ["-c", "-q"], { input: plain.virtio_pci!, encoding: "buffer" }))
          .stdout,
      ),
    );
    write("kernel/virtio_net.ko", plain.virtio_net!);
    write(
      "kernel/virtio_console.ko.xz",
      Buffer.from(
        (await execa("xz", ["-c"], { input: plain.virtio_console!, encoding: "buffer" })).stdout,
      ),
    );
    writeFileSync(
      join(root, "modules.dep"),
      [
        "kernel/virtio_ring.ko.gz:",
        "kernel/virtio.ko.xz: kernel/virtio_ring.ko.gz",
        "kernel/virtio_pci.ko.zst: kernel/virtio.ko.xz kernel/virtio_ring.ko.gz",
        "kernel/virtio_net.ko: kernel/virtio.ko.xz kernel/virtio_ring.ko.gz",
        "kernel/virtio_console.ko.xz: kernel/virtio.ko.xz kernel/virtio_ring.ko.gz",
        "",
      ].join("\n"),
    );
    const files = await resolveModules(root, ["virtio-net-pci"], "fake");
    assert.deepEqual(
      files.map((f) => `${f.name}:${f.compression}`),
      ["virtio_ring:gz", "virtio:xz", "virtio_pci:zst", "virtio_net:none", "virtio_console:xz"],
    );
    for (const f of files) {
      const out = await decompressModule(readFileSync(f.path), f);
      assert.ok(out.equals(plain[f.name]!), `${f.name} decompresses to the original`);
    }
  });

  it("a tree without modules.dep is a UserError", async () => {
    await assert.rejects(resolveModules(join(tmp, "nothing"), ["e1000"], "k"), UserError);
  });
});
