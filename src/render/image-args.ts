// QEMU arguments of an `image` VM: direct kernel boot of a built image, its overlay and its cloud-init seed.
import { qemuOpts } from "./qemu-escape.js";

export interface ImageBootArgs {
  /** Built images boot their kernel directly; null: the firmware boots the disk (downloaded images). */
  boot: { kernel: string; initrd: string; append: string } | null;
  /** The VM's qcow2 overlay (its backing file is the cached base). */
  overlay: string;
  /** The NoCloud seed ISO. */
  seed: string;
}

/**
 * `-kernel/-initrd/-append` (when the image has a kernel) and two virtio drives: the overlay first,
 * so it is /dev/vda (the `root=` a built image's command line names), the seed second (read-only).
 * Formats are given, never probed: a probed raw file could pose as another format.
 */
export function imageBootArgs(a: ImageBootArgs): string[] {
  const argv: string[] = [];
  if (a.boot)
    argv.push("-kernel", a.boot.kernel, "-initrd", a.boot.initrd, "-append", a.boot.append);
  argv.push(
    "-drive",
    qemuOpts("if=virtio", [
      ["file", a.overlay],
      ["format", "qcow2"],
      ["cache", "unsafe"],
      ["discard", "unmap"],
    ]),
    "-drive",
    qemuOpts("if=virtio", [
      ["file", a.seed],
      ["format", "raw"],
      ["readonly", "on"],
    ]),
  );
  return argv;
}
