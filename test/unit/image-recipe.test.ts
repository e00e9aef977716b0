// The image recipe and cache key (every input changes the key), mmdebstrap argv, boot args, NIC models, progress.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { drivenNicModels, parseModuleIndex } from "../../src/guest/modules.js";
import { byteMeter, renderBar } from "../../src/image/progress.js";
import {
  DEFAULT_MIRROR,
  IMAGE_PACKAGES,
  imageKey,
  imageMirrorProblem,
  imageRecipe,
  KERNEL_APPEND,
  mmdebstrapArgv,
} from "../../src/image/recipe.js";
import { KNOWN_IMAGES, knownImage } from "../../src/model/images.js";
import { imageBootArgs } from "../../src/render/image-args.js";
import { assertGolden } from "../helpers/golden.js";

const d12 = knownImage("debian-12")!;
const d13 = knownImage("debian-13")!;

describe("image recipe and cache key", () => {
  test("the key is stable for the same inputs", () => {
    assert.equal(imageKey(imageRecipe(d12)), imageKey(imageRecipe(d12)));
    assert.match(imageKey(imageRecipe(d12)), /^[0-9a-f]{64}$/);
  });
  test("suite, mirror, package list, files, kernel arguments and builder version each change it", () => {
    const base = imageRecipe(d12);
    const k = imageKey(base);
    const variants = [
      imageRecipe(d13),
      imageRecipe(d12, "http://ftp.de.debian.org/debian"),
      { ...base, packages: [...base.packages, "vim"] },
      { ...base, files: { ...base.files, "etc/x": "y" } },
      { ...base, append: `${base.append} quiet` },
      { ...base, builder: "qnet-image-builder-0" },
    ];
    const keys = new Set([k, ...variants.map(imageKey)]);
    assert.equal(keys.size, variants.length + 1);
  });
  test("the default mirror brings security updates; another mirror its suite and updates only", () => {
    assert.deepEqual(imageRecipe(d12).sources, [
      `deb ${DEFAULT_MIRROR} bookworm main`,
      `deb ${DEFAULT_MIRROR} bookworm-updates main`,
      "deb http://deb.debian.org/debian-security bookworm-security main",
    ]);
    assert.deepEqual(imageRecipe(d13, "http://mirror.example/debian/").sources, [
      "deb http://mirror.example/debian trixie main",
      "deb http://mirror.example/debian trixie-updates main",
    ]);
  });
  test("an https mirror adds CA certificates to the image (apt inside needs them)", () => {
    assert.ok(
      imageRecipe(d12, "https://mirror.example/debian").packages.includes("ca-certificates"),
    );
    assert.ok(!imageRecipe(d12).packages.includes("ca-certificates"));
  });
  test("mirror URLs: http, https and file only, one word", () => {
    assert.equal(imageMirrorProblem("http://deb.debian.org/debian"), null);
    assert.equal(imageMirrorProblem("file:///srv/mirror"), null);
    assert.match(imageMirrorProblem("ftp://x/debian")!, /http, https or file/);
    assert.match(imageMirrorProblem("not a url")!, /not a URL/);
    assert.match(imageMirrorProblem("http://x/deb ian")!, /spaces/);
  });
  test("every image carries the packages the issue asks for", () => {
    for (const p of [
      "linux-image-cloud-amd64",
      "systemd",
      "cloud-init",
      "openssh-server",
      "qemu-guest-agent",
      "iproute2",
    ]) {
      assert.ok(IMAGE_PACKAGES.includes(p), p);
    }
  });
  test("mmdebstrap argv (golden)", () => {
    const argv = mmdebstrapArgv(imageRecipe(d12), "/cache/.tmp-1/root", "overlay");
    assert.equal(argv[0], "mmdebstrap");
    assert.ok(argv.includes("--setup-hook=sync-in overlay /"));
    assertGolden("image.mmdebstrap.debian-12.txt", `${argv.join("\n")}\n`);
  });
  test("the kernel command line names the root disk and the serial console", () => {
    assert.match(KERNEL_APPEND, /(^| )root=\/dev\/vda( |$)/);
    assert.match(KERNEL_APPEND, /(^| )console=ttyS0( |$)/);
  });
  test("known images are listed once each", () => {
    assert.deepEqual(
      KNOWN_IMAGES.map((i) => i.name),
      ["debian-12", "debian-13"],
    );
  });
});

describe("NIC models a kernel drives", () => {
  test("from modules.dep and modules.builtin", () => {
    const index = parseModuleIndex(
      "kernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko\nkernel/net/core/failover.ko:\nkernel/drivers/net/vmxnet3/vmxnet3.ko:\n",
      "kernel/drivers/virtio/virtio_pci.ko\n",
    );
    const models = drivenNicModels(index);
    assert.ok(models.includes("virtio-net-pci"));
    assert.ok(models.includes("vmxnet3"));
    assert.ok(!models.includes("e1000"));
  });
});

describe("QEMU arguments of an image VM", () => {
  test("direct kernel boot, overlay as the first drive, seed read-only; commas doubled", () => {
    const argv = imageBootArgs({
      boot: { kernel: "/c/vmlinuz", initrd: "/c/initrd.img", append: KERNEL_APPEND },
      overlay: "/run/qnet/a,b/vm/vm0.overlay.qcow2",
      seed: "/run/qnet/lab/vm/vm0.seed.img",
    });
    assertGolden("image.boot-args.txt", `${argv.join("\n")}\n`);
    assert.equal(argv.indexOf("-drive"), 6);
    assert.match(
      argv[7]!,
      /^if=virtio,file=\/run\/qnet\/a,,b\/vm\/vm0\.overlay\.qcow2,format=qcow2,/,
    );
  });
  test("a downloaded image boots from its disk: no -kernel", () => {
    const argv = imageBootArgs({ boot: null, overlay: "/o.qcow2", seed: "/s.img" });
    assert.ok(!argv.includes("-kernel"));
    assert.equal(argv.filter((a) => a === "-drive").length, 2);
  });
});

describe("download progress", () => {
  test("a bar with percent and sizes, or the bytes alone without a total", () => {
    assert.equal(renderBar(0, 100, 10), "[          ]   0%  0 B / 100 B");
    assert.equal(renderBar(50 * 2 ** 20, 100 * 2 ** 20, 10), "[#####     ]  50%  50 MiB / 100 MiB");
    assert.equal(renderBar(3 * 2 ** 30, null), "3.0 GiB");
  });
  test("on a pipe: one line per 10 %; on a terminal: redrawn in place, a newline at the end", () => {
    const lines: string[] = [];
    const pipe = byteMeter({ write: (s) => lines.push(s) }, "x");
    for (let n = 0; n <= 1000; n += 10) pipe(n, 1000);
    assert.equal(lines.length, 11);
    assert.ok(lines.every((l) => l.endsWith("\n") && l.startsWith("x [")));
    const tty: string[] = [];
    const term = byteMeter({ write: (s) => tty.push(s), isTTY: true }, "x");
    for (let n = 0; n <= 1000; n += 10) term(n, 1000);
    assert.ok(tty.every((l) => l.startsWith("\rx [")));
    assert.ok(tty.at(-1)!.endsWith("100%  1000 B / 1000 B\n"));
  });
});
