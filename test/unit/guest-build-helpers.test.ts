// Tests for the guest builder's pure helpers: kernel choice, ldd parsing, static ELF check, initramfs layout.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { UserError } from "../../src/errors.js";
import { compareVersions, isStaticElf, parseLdd, pickKernel } from "../../src/guest/build.js";
import { guestLayout } from "../../src/guest/layout.js";
import { hasPvhNote } from "../../src/guest/vmlinux.js";

describe("guest builder helpers", () => {
  const tmp = mkdtempSync(join(tmpdir(), "qnt-guest-helpers-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it("compares kernel versions numerically", () => {
    assert.ok(compareVersions("6.10.0-1-amd64", "6.9.12-1-amd64") > 0);
    assert.ok(compareVersions("6.1.0-56-amd64", "6.1.0-9-amd64") > 0);
    assert.equal(compareVersions("6.1.0-56-amd64", "6.1.0-56-amd64"), 0);
  });

  it("picks the newest kernel that has a modules tree and skips the rest without error", async () => {
    const boot = join(tmp, "boot");
    const mods = join(tmp, "modules");
    mkdirSync(boot, { recursive: true });
    for (const v of ["6.1.0-9-amd64", "6.1.0-56-amd64", "6.18.44-fc"])
      writeFileSync(join(boot, `vmlinuz-${v}`), "k");
    writeFileSync(join(boot, "config-6.18.44-fc"), "");
    for (const v of ["6.1.0-9-amd64", "6.1.0-56-amd64"]) {
      mkdirSync(join(mods, v), { recursive: true });
      writeFileSync(join(mods, v, "modules.dep"), "");
    }
    assert.deepEqual(await pickKernel(boot, mods), {
      kernel: join(boot, "vmlinuz-6.1.0-56-amd64"),
      modulesDir: join(mods, "6.1.0-56-amd64"),
    });
    await assert.rejects(pickKernel(join(tmp, "no-boot"), mods), UserError);
  });

  it("parses ldd output, dropping the vdso and keeping the loader", () => {
    const out = [
      "\tlinux-vdso.so.1 (0x00007ffd)",
      "\tlibglib-2.0.so.0 => /lib/x86_64-linux-gnu/libglib-2.0.so.0 (0x00007f)",
      "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)",
      "\t/lib64/ld-linux-x86-64.so.2 (0x00007f)",
    ].join("\n");
    assert.deepEqual(parseLdd(out), [
      "/lib/x86_64-linux-gnu/libglib-2.0.so.0",
      "/lib/x86_64-linux-gnu/libc.so.6",
      "/lib64/ld-linux-x86-64.so.2",
    ]);
    assert.throws(() => parseLdd("\tlibfoo.so.1 => not found\n", "qemu-ga"), /libfoo/);
  });

  it("tells static busybox from dynamic qemu-ga", () => {
    assert.equal(isStaticElf(readFileSync("/bin/busybox")), true);
    assert.equal(isStaticElf(readFileSync(process.execPath)), false);
    assert.equal(isStaticElf(Buffer.from("#!/bin/sh\n")), false);
    assert.equal(hasPvhNote(readFileSync("/bin/busybox")), false);
  });

  it("lays out the initramfs with every parent directory before its files", () => {
    const entries = guestLayout({
      initScript: "#!/bin/busybox sh\n",
      configureScript: "#!/bin/sh\n",
      udhcpcScript: "#!/bin/sh\n",
      busybox: Buffer.from("bb"),
      modules: [{ name: "virtio_net", data: Buffer.from("m") }],
      qemuGa: { path: "/usr/sbin/qemu-ga", data: Buffer.from("ga") },
      libs: [
        { path: "/lib/x86_64-linux-gnu/libc.so.6", data: Buffer.from("c") },
        { path: "/lib64/ld-linux-x86-64.so.2", data: Buffer.from("ld") },
      ],
    });
    const paths = entries.map((e) => e.path.replace(/^\//, ""));
    for (const [i, p] of paths.entries()) {
      const parent = p.split("/").slice(0, -1).join("/");
      if (parent)
        assert.ok(paths.indexOf(parent) >= 0 && paths.indexOf(parent) < i, `${parent} before ${p}`);
    }
    for (const p of [
      "init",
      "bin/busybox",
      "bin/sh",
      "etc/qnet/udhcpc.sh",
      "etc/qnet/configure.sh",
      "lib/modules/qnet/virtio_net.ko",
      "usr/sbin/qemu-ga",
      "lib64/ld-linux-x86-64.so.2",
      "proc",
      "sys",
      "dev",
      "tmp",
    ]) {
      assert.ok(paths.includes(p), p);
    }
    const init = entries.find((e) => e.path === "init");
    assert.equal(init?.type === "file" && init.mode, 0o755);
  });
});
