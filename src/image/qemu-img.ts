// qemu-img: what a disk file is (format, size, backing file) and the copy-on-write overlay a VM runs on.
import { existsSync, linkSync, rmSync } from "node:fs";
import { basename, dirname, isAbsolute, join } from "node:path";
import { execa } from "execa";
import { CommandError, EXIT, UserError } from "../errors.js";

export interface DiskInfo {
  /** qemu-img's probed format: "qcow2", "raw", "vmdk", ... (anything unrecognised probes as raw). */
  format: string;
  virtualSize: number;
  /** The backing file a qcow2 names, or null. */
  backingFile: string | null;
  /** A qcow2 external data file, or null. */
  dataFile: string | null;
}

async function qemuImg(args: string[]): Promise<string> {
  const argv = ["qemu-img", ...args];
  const r = await execa("qemu-img", args, { reject: false });
  if (r.failed) {
    if ((r.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
      throw new UserError(
        "qemu-img is not installed",
        "apt-get install qemu-utils",
        EXIT.environment,
      );
    }
    throw new CommandError(argv, r.exitCode ?? null, String(r.stderr));
  }
  return String(r.stdout);
}

/** `qemu-img info --output=json` of a file (shared lock: works on an image a VM has open). */
export async function diskInfo(path: string): Promise<DiskInfo> {
  const j = JSON.parse(await qemuImg(["info", "--output=json", "--force-share", path])) as {
    format: string;
    "virtual-size": number;
    "backing-filename"?: string;
    "full-backing-filename"?: string;
    "format-specific"?: { type?: string; data?: { "data-file"?: string } };
  };
  return {
    format: j.format,
    virtualSize: j["virtual-size"],
    backingFile: j["full-backing-filename"] ?? j["backing-filename"] ?? null,
    dataFile: j["format-specific"]?.data?.["data-file"] ?? null,
  };
}

/**
 * Why a file cannot serve as a base image, or null. qcow2 or raw only; a qcow2 naming a backing or
 * data file is refused too: QEMU would open whatever host file it names.
 */
export function baseImageProblem(info: DiskInfo): string | null {
  if (info.format !== "qcow2" && info.format !== "raw") {
    return `it is a ${info.format} image; qnet runs qcow2 or raw images (convert it: qemu-img convert -O qcow2 IN OUT)`;
  }
  if (info.backingFile !== null) {
    return `it names a backing file (${info.backingFile}); a base image must stand alone`;
  }
  if (info.dataFile !== null) {
    return `it names an external data file (${info.dataFile}); a base image must stand alone`;
  }
  return null;
}

export interface OverlaySpec {
  /** Absolute path of the base image (cached; never written). */
  base: string;
  baseFormat: "qcow2" | "raw";
  /** Path of the overlay to create. */
  path: string;
}

/**
 * Create a VM's qcow2 overlay over `base` (`qemu-img create -f qcow2 -F FMT -b BASE PATH`): the VM
 * writes only to the overlay, QEMU opens the base read-only. The overlay appears whole or not at all,
 * and an existing file is never replaced (a persistent overlay keeps the VM's disk): returns false
 * when `path` already exists.
 */
export async function createOverlay(o: OverlaySpec): Promise<boolean> {
  if (!isAbsolute(o.base)) throw new Error(`internal: overlay base must be absolute: ${o.base}`);
  if (existsSync(o.path)) return false;
  const tmp = join(dirname(o.path), `.${basename(o.path)}.${process.pid}.tmp`);
  rmSync(tmp, { force: true });
  try {
    await qemuImg(["create", "-q", "-f", "qcow2", "-F", o.baseFormat, "-b", o.base, tmp]);
    try {
      linkSync(tmp, o.path); // fails if the path appeared meanwhile: never replaces it
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw e;
    }
    return true;
  } finally {
    rmSync(tmp, { force: true });
  }
}
