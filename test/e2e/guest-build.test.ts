// The built-in guest build from the real host inputs: reproducible, cached, and re-keyed when an input changes.

import assert from "node:assert/strict";
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { execa } from "execa";
import { buildGuest, defaultCacheDir, pickKernel } from "../../src/guest/build.js";

describe("buildGuest with the host's kernel, busybox and qemu-ga", () => {
  const tmp = mkdtempSync(join(tmpdir(), `qnt-guest-build-${process.pid}-`));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const models = ["virtio-net-pci"];

  it("builds byte-identical output twice from the same inputs, then hits the cache", async () => {
    const msgs: string[] = [];
    const a = await buildGuest({
      nicModels: models,
      cacheDir: join(tmp, "a"),
      onProgress: (m) => msgs.push(m),
    });
    const b = await buildGuest({ nicModels: models, cacheDir: join(tmp, "b") });
    assert.equal(a.cached, false);
    assert.equal(b.cached, false);
    assert.equal(a.key, b.key);
    assert.match(a.key, /^[0-9a-f]{64}$/);
    assert.equal(a.initrd, join(tmp, "a", a.key, "initrd.img"));
    assert.ok(readFileSync(a.initrd).equals(readFileSync(b.initrd)), "initrd is reproducible");
    assert.ok(readFileSync(a.kernel).equals(readFileSync(b.kernel)), "kernel is reproducible");
    assert.ok(
      msgs.some((m) => m.includes("building guest initrd")),
      msgs.join("\n"),
    );

    const c = await buildGuest({ nicModels: models, cacheDir: join(tmp, "a") });
    assert.deepEqual(c, { ...a, cached: true });
  });

  it("packs /init, busybox, the modules and qemu-ga with its libraries (checked with cpio -t)", async () => {
    const g = await buildGuest({
      nicModels: ["virtio-net-pci", "e1000"],
      cacheDir: join(tmp, "a"),
    });
    const cpio = gunzipSync(readFileSync(g.initrd));
    const list = (await execa("cpio", ["-t", "--quiet"], { input: cpio })).stdout.split("\n");
    for (const p of [
      "init",
      "bin/busybox",
      "etc/qnet/udhcpc.sh",
      "lib/modules/qnet/virtio_net.ko",
      "lib/modules/qnet/virtio_console.ko",
      "lib/modules/qnet/e1000.ko",
      "usr/sbin/qemu-ga",
      "lib64/ld-linux-x86-64.so.2",
    ]) {
      assert.ok(list.includes(p), `${p} in the initramfs`);
    }
    assert.ok(
      list.some((p) => /libglib-2\.0\.so\.0$/.test(p)),
      "qemu-ga's glib is packed",
    );
    // The kernel is an ELF vmlinux with a PVH entry (QEMU boots it without decompressing).
    assert.equal(basename(g.kernel), "vmlinux");
    assert.equal(readFileSync(g.kernel).subarray(0, 4).toString("latin1"), "\x7fELF");
  });

  it("changes the key when an input changes: NIC models, kernel bytes, the PVH switch", async () => {
    const base = await buildGuest({ nicModels: models, cacheDir: join(tmp, "a") });
    const more = await buildGuest({
      nicModels: ["virtio-net-pci", "e1000"],
      cacheDir: join(tmp, "a"),
    });
    assert.notEqual(more.key, base.key);

    const { kernel, modulesDir } = await pickKernel("/boot", "/lib/modules");
    const copy = join(tmp, basename(kernel));
    copyFileSync(kernel, copy);
    const same = await buildGuest({
      kernel: copy,
      modules: modulesDir,
      nicModels: models,
      cacheDir: join(tmp, "a"),
    });
    assert.equal(same.key, base.key, "same kernel bytes at another path: same key");
    assert.equal(same.cached, true);
    appendFileSync(copy, Buffer.from([0]));
    const changed = await buildGuest({
      kernel: copy,
      modules: modulesDir,
      nicModels: models,
      cacheDir: join(tmp, "a"),
    });
    assert.notEqual(changed.key, base.key);
    assert.equal(changed.cached, false);

    const bz = await buildGuest({ nicModels: models, cacheDir: join(tmp, "a"), pvh: false });
    assert.notEqual(bz.key, base.key);
    assert.equal(basename(bz.kernel), "vmlinuz");
    assert.equal(statSync(bz.kernel).size, statSync(kernel).size);
  });

  it("leaves no temp files in the cache", async () => {
    const r = await execa("find", [tmp, "-name", "*.tmp-*"]);
    assert.equal(r.stdout, "");
  });

  it("puts the default cache under XDG_CACHE_HOME or ~/.cache", () => {
    const saved = process.env.XDG_CACHE_HOME;
    try {
      process.env.XDG_CACHE_HOME = "/x/cache";
      assert.equal(defaultCacheDir(), "/x/cache/qnet/guest");
      delete process.env.XDG_CACHE_HOME;
      assert.ok(defaultCacheDir().endsWith("/.cache/qnet/guest"));
    } finally {
      if (saved === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = saved;
    }
    assert.ok(existsSync("/bin/busybox"));
  });
});
