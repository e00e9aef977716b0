// Builds (or finds in the cache) the built-in guest: the host's kernel plus an initramfs of busybox, modules and qemu-ga.

import { createHash, randomBytes } from "node:crypto";
import { access, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { execa } from "execa";
import { CommandError, EXIT, UserError } from "../errors.js";
import { writeCpio } from "./cpio.js";
import { renderConfigureScript, renderInitScript, renderUdhcpcScript } from "./init-script.js";
import { guestLayout } from "./layout.js";
import { decompressModule, type ModuleFile, resolveModules, SSH_MODULES } from "./modules.js";
import { extractPvhVmlinux } from "./vmlinux.js";

/** Bump when the layout or the way inputs are packed changes: it is part of the cache key. */
export const BUILDER_VERSION = "qnet-guest-builder-3";

/** gzip level of the initrd; fixed so the output is reproducible. */
const GZIP_LEVEL = 6;

export interface BuildGuestOptions {
  /** Kernel image; default: the newest /boot/vmlinuz-* that has a /lib/modules/<version> tree. */
  kernel?: string;
  /** Modules tree for that kernel; default: /lib/modules/<version from the kernel's file name>. */
  modules?: string;
  /** QEMU NIC models the guest must drive (e.g. "virtio-net-pci", "e1000"). */
  nicModels: string[];
  /** Cache root; default: defaultCacheDir(). */
  cacheDir?: string;
  /**
   * Unpack the bzImage into an ELF vmlinux that QEMU boots through PVH (default true): skips the
   * in-guest decompression, seconds under TCG. Falls back to the bzImage when that is not possible.
   */
  pvh?: boolean;
  /** Carry iperf3 (for `qnet perf`) when the host has it (default true). */
  iperf3?: boolean;
  /**
   * An SSH server in the guest (dropbear from the host's dropbear-bin; its keys arrive at boot through
   * fw_cfg, see guest/ssh.ts). Default true; a missing dropbear is then an error naming the package.
   */
  ssh?: boolean;
  onProgress?: (msg: string) => void;
}

export interface BuiltGuest {
  /** Kernel image for QEMU's -kernel inside the cache entry: `vmlinux` (PVH ELF) or `vmlinuz` (bzImage). */
  kernel: string;
  /** gzip-compressed newc initramfs for -initrd. */
  initrd: string;
  /** sha256 (hex) over every input. */
  key: string;
  /** True when the cache already held this build. */
  cached: boolean;
  /** The guest runs an SSH server (dropbear) when QEMU gives it keys over fw_cfg. */
  ssh: boolean;
}

/** `${XDG_CACHE_HOME:-$HOME/.cache}/qnet/guest`. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg?.startsWith("/") ? xdg : join(homedir(), ".cache");
  return join(base, "qnet", "guest");
}

/** Build the built-in guest for these NIC models, or return the cached build of the same inputs. */
export async function buildGuest(opts: BuildGuestOptions): Promise<BuiltGuest> {
  const progress = opts.onProgress ?? (() => {});
  const { kernel, modulesDir } = opts.kernel
    ? explicitKernel(opts.kernel, opts.modules)
    : await pickKernel("/boot", "/lib/modules", opts.modules);
  const kernelLabel = basename(kernel);
  const pvh = opts.pvh ?? true;

  const ssh = opts.ssh ?? true;
  const modules = await resolveModules(
    modulesDir,
    uniq(opts.nicModels),
    kernelLabel,
    ssh ? SSH_MODULES : [],
  );
  const busyboxPath = "/bin/busybox";
  const qemuGaPath = await findQemuGa();
  const iperf3Path = opts.iperf3 === false ? null : await findIperf3();
  const dropbearPath = ssh ? await findDropbear() : null;
  const libPaths = uniq([
    ...(await sharedLibraries(qemuGaPath)),
    ...(iperf3Path ? await sharedLibraries(iperf3Path) : []),
    ...(dropbearPath ? await sharedLibraries(dropbearPath) : []),
  ]);

  const libDirs = uniq(libPaths.map((p) => dirname(p)));
  const initScript = renderInitScript({
    modules: modules.map((m) => m.name),
    qemuGa: qemuGaPath,
    libDirs,
  });
  const udhcpcScript = renderUdhcpcScript();
  const configureScript = renderConfigureScript({ dropbear: dropbearPath, libDirs });

  const kernelData = await readInput(kernel, "kernel image");
  const busybox = await readInput(busyboxPath, "busybox", "install busybox-static");
  if (!isStaticElf(busybox)) {
    throw new UserError(
      `${busyboxPath} is dynamically linked; the guest needs a static busybox`,
      "install busybox-static",
      EXIT.environment,
    );
  }
  const rawModules = await Promise.all(modules.map((m) => readInput(m.path, "kernel module")));
  const qemuGa = await readInput(qemuGaPath, "qemu-ga");
  const iperf3 = iperf3Path ? await readInput(iperf3Path, "iperf3") : null;
  const dropbear = dropbearPath
    ? await readInput(dropbearPath, "dropbear", "install dropbear-bin")
    : null;
  const libs = await Promise.all(libPaths.map((p) => readInput(p, "shared library")));

  const h = createHash("sha256");
  const field = (label: string, data: string | Uint8Array): void => {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    h.update(`${label}\0${bytes.length}\0`);
    h.update(bytes);
  };
  field("builder", BUILDER_VERSION);
  field("pvh", String(pvh));
  field("init", initScript);
  field("udhcpc", udhcpcScript);
  field("configure", configureScript);
  field("kernel", kernelData);
  modules.forEach((m, i) => {
    field("module-name", `${m.name}:${m.compression}`);
    field("module", rawModules[i]!);
  });
  field("busybox", busybox);
  field("qemu-ga-path", qemuGaPath);
  field("qemu-ga", qemuGa);
  if (iperf3Path && iperf3) {
    field("iperf3-path", iperf3Path);
    field("iperf3", iperf3);
  }
  if (dropbearPath && dropbear) {
    field("dropbear-path", dropbearPath);
    field("dropbear", dropbear);
  }
  libPaths.forEach((p, i) => {
    field("lib-path", p);
    field("lib", libs[i]!);
  });
  const key = h.digest("hex");

  const dir = join(opts.cacheDir ?? defaultCacheDir(), key);
  const initrdOut = join(dir, "initrd.img");
  for (const name of ["vmlinux", "vmlinuz"]) {
    const kernelOut = join(dir, name);
    if ((await exists(kernelOut)) && (await exists(initrdOut))) {
      progress(`guest ${key.slice(0, 12)} found in the cache`);
      return { kernel: kernelOut, initrd: initrdOut, key, cached: true, ssh };
    }
  }

  progress(
    `building guest initrd (${kernelLabel}; modules: ${modules.map((m) => m.name).join(", ")})`,
  );
  const decompressed = await Promise.all(
    modules.map(async (m: ModuleFile, i) => ({
      name: m.name,
      data: await decompressModule(rawModules[i]!, m),
    })),
  );
  const archive = writeCpio(
    guestLayout({
      initScript,
      udhcpcScript,
      configureScript,
      busybox,
      modules: decompressed,
      qemuGa: { path: qemuGaPath, data: qemuGa },
      extras: iperf3Path && iperf3 ? [{ path: iperf3Path, data: iperf3 }] : [],
      libs: libPaths.map((p, i) => ({ path: p, data: libs[i]! })),
      dropbear: dropbearPath && dropbear ? { path: dropbearPath, data: dropbear } : null,
    }),
  );
  const initrd = gzipSync(archive, { level: GZIP_LEVEL });
  const vmlinux = pvh ? await extractPvhVmlinux(kernelData) : null;
  const kernelOut = join(dir, vmlinux ? "vmlinux" : "vmlinuz");
  await mkdir(dir, { recursive: true });
  await writeAtomic(kernelOut, vmlinux ?? kernelData);
  await writeAtomic(initrdOut, initrd);
  progress(
    `guest ${key.slice(0, 12)} built: ${initrdOut} (${Math.round(initrd.length / 1024)} KiB)`,
  );
  return { kernel: kernelOut, initrd: initrdOut, key, cached: false, ssh };
}

function explicitKernel(kernel: string, modules?: string): { kernel: string; modulesDir: string } {
  if (modules) return { kernel, modulesDir: modules };
  const m = /^vmlinuz-(.+)$/.exec(basename(kernel));
  if (!m) {
    throw new UserError(
      `cannot tell the version of kernel ${kernel} from its file name`,
      "pass its modules tree too (/lib/modules/<version>)",
    );
  }
  return { kernel, modulesDir: join("/lib/modules", m[1]!) };
}

/**
 * The newest vmlinuz-<version> in bootDir with a modules tree (modules.dep) in modulesRoot/<version>.
 * Kernels without one (e.g. a host kernel booted from elsewhere) are skipped.
 */
export async function pickKernel(
  bootDir: string,
  modulesRoot: string,
  modulesOverride?: string,
): Promise<{ kernel: string; modulesDir: string }> {
  const names = await readdir(bootDir).catch(() => [] as string[]);
  const versions = names
    .filter((n) => n.startsWith("vmlinuz-"))
    .map((n) => n.slice("vmlinuz-".length))
    .sort(compareVersions)
    .reverse();
  for (const v of versions) {
    const modulesDir = modulesOverride ?? join(modulesRoot, v);
    if (await exists(join(modulesDir, "modules.dep"))) {
      return { kernel: join(bootDir, `vmlinuz-${v}`), modulesDir };
    }
  }
  throw new UserError(
    `no kernel in ${bootDir} has a modules tree in ${modulesRoot}`,
    "install a distribution kernel (Debian: apt-get install linux-image-amd64) or pass --guest-kernel",
    EXIT.environment,
  );
}

/** Compare version strings piece by piece, numbers numerically ("6.10.0" > "6.9.1"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/(\d+)/);
  const pb = b.split(/(\d+)/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? "";
    const y = pb[i] ?? "";
    if (x === y) continue;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return 0;
}

async function findIperf3(): Promise<string | null> {
  for (const p of ["/usr/bin/iperf3", "/usr/local/bin/iperf3"]) if (await exists(p)) return p;
  return null;
}

async function findDropbear(): Promise<string> {
  for (const p of ["/usr/sbin/dropbear", "/usr/bin/dropbear"]) {
    if (await exists(p)) return p;
  }
  throw new UserError(
    "dropbear not found in /usr/sbin or /usr/bin; the built-in guest's SSH server is dropbear",
    "install dropbear-bin (apt-get install --no-install-recommends dropbear-bin)",
    EXIT.environment,
  );
}

async function findQemuGa(): Promise<string> {
  for (const p of ["/usr/sbin/qemu-ga", "/usr/bin/qemu-ga", "/usr/local/bin/qemu-ga"]) {
    if (await exists(p)) return p;
  }
  throw new UserError(
    "qemu-ga (QEMU guest agent) not found in /usr/sbin or /usr/bin",
    "install qemu-guest-agent",
    EXIT.environment,
  );
}

/** The shared objects (and dynamic loader) a binary needs, as absolute paths, via ldd. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const argv = ["ldd", binary];
  let out: string;
  try {
    out = (await execa("ldd", [binary])).stdout;
  } catch (cause) {
    const e = cause as { code?: string; exitCode?: number; stderr?: string };
    if (e.code === "ENOENT") {
      throw new UserError("ldd not found", "install libc-bin", EXIT.environment, { cause });
    }
    throw new CommandError(argv, e.exitCode ?? null, e.stderr ?? "", { cause });
  }
  return parseLdd(out, binary);
}

/** Parse `ldd` output into absolute library paths (vdso dropped); missing libraries are an error. */
export function parseLdd(text: string, binary = "binary"): string[] {
  const paths: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    if (/=>\s*not found/.test(line)) {
      throw new UserError(
        `${binary} needs a library that is missing: ${line.split(/\s/)[0]}`,
        "reinstall qemu-guest-agent",
        EXIT.environment,
      );
    }
    const arrow = /=>\s*(\/\S+)/.exec(line);
    const direct = /^(\/\S+)/.exec(line);
    const p = arrow?.[1] ?? direct?.[1];
    if (p && !paths.includes(p)) paths.push(p);
  }
  return paths;
}

/** True for an ELF file without a PT_INTERP program header (no dynamic loader needed). */
export function isStaticElf(buf: Uint8Array): boolean {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) return false;
  const is64 = b[4] === 2;
  const le = b[5] === 1;
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const u64 = (o: number) => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
  const phoff = is64 ? u64(0x20) : u32(0x1c);
  const phentsize = u16(is64 ? 0x36 : 0x2a);
  const phnum = u16(is64 ? 0x38 : 0x2c);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > b.length) return false;
    if (u32(off) === 3) return false; // PT_INTERP
  }
  return true;
}

async function readInput(path: string, what: string, hint?: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw new UserError(`cannot read ${what} ${path}`, hint, EXIT.environment, { cause });
  }
}

/** Write a file so readers see either nothing or the whole content: temp file, fsync, rename. */
export async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const fh = await open(tmp, "w", 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const dh = await open(dirname(path), "r");
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

function uniq<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}
