// Where a lab's run-time files live inside its state directory (pure path arithmetic).
import { join } from "node:path";
import type { VmRuntime } from "../render/qemu-args.js";
import type { Vm } from "./lab.js";

export interface VmFiles {
  qmp: string;
  qga: string;
  serial: string;
  serialLog: string;
  pidfile: string;
  stderrLog: string;
  seed: string;
  /** How the VM last started (a template or a cold boot), for status. */
  boot: string;
  /** An `image` VM's copy-on-write disk over the cached base image. */
  overlay: string;
}

export function vmFiles(stateDir: string, vm: string): VmFiles {
  const base = join(stateDir, "vm", vm);
  return {
    qmp: `${base}.qmp`,
    qga: `${base}.qga`,
    serial: `${base}.serial`,
    serialLog: `${base}.console.log`,
    pidfile: `${base}.pid`,
    stderrLog: `${base}.qemu.log`,
    seed: `${base}.seed.img`,
    boot: `${base}.boot.json`,
    overlay: `${base}.overlay.qcow2`,
  };
}

/**
 * Where an `image` VM's overlay lives: in the state directory (gone with the lab), or for `persist: true`
 * under `dataDir` (kept by down, used again by the next up).
 */
export function overlayPath(stateDir: string, dataDir: string, lab: string, vm: Vm): string {
  return vm.guest.kind === "image" && vm.guest.persist
    ? join(dataDir, "overlays", lab, `${vm.name}.qcow2`)
    : vmFiles(stateDir, vm.name).overlay;
}

/**
 * The boot part of a VM's runtime: the user's kernel or disk, the built-in guest (paths given), or an
 * image (its kernel, when it has one, given).
 */
export function vmRuntime(
  stateDir: string,
  vm: Vm,
  builtin: { kernel: string; initrd: string; append: string },
  image?: { boot: { kernel: string; initrd: string; append: string } | null; overlay: string },
): VmRuntime {
  const f = vmFiles(stateDir, vm.name);
  const g = vm.guest;
  const boot: VmRuntime["boot"] =
    g.kind === "builtin"
      ? { kind: "kernel", kernel: builtin.kernel, initrd: builtin.initrd, append: builtin.append }
      : g.kind === "kernel"
        ? { kind: "kernel", kernel: g.kernel, initrd: g.initrd, append: g.append }
        : g.kind === "image"
          ? {
              kind: "image",
              boot: image?.boot ?? null,
              overlay: image?.overlay ?? f.overlay,
              seed: f.seed,
            }
          : { kind: "disk", disk: g.disk, seed: f.seed };
  return {
    qmp: f.qmp,
    qga: f.qga,
    serial: f.serial,
    serialLog: f.serialLog,
    pidfile: f.pidfile,
    boot,
  };
}
