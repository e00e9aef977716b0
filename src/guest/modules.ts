// Kernel modules the built-in guest needs for its NIC models and guest agent, resolved through modules.dep.

import { readFile } from "node:fs/promises";
import { basename, isAbsolute, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { execa } from "execa";
import { CommandError, UserError } from "../errors.js";

/**
 * Driver modules per QEMU NIC model. Each inner list is a group of alternatives: every one present in
 * the kernel is loaded, and at least one must be present (or built in).
 * rtl8139: QEMU emulates an RTL8139C+, which 8139cp drives; 8139too is the fallback for older kernels.
 */
const NIC_DRIVERS: Readonly<Record<string, readonly (readonly string[])[]>> = {
  "virtio-net-pci": [["virtio_pci"], ["virtio_net"]],
  "virtio-net": [["virtio_pci"], ["virtio_net"]],
  "virtio-net-pci-non-transitional": [["virtio_pci"], ["virtio_net"]],
  e1000: [["e1000"]],
  "e1000-82540em": [["e1000"]],
  "e1000-82544gc": [["e1000"]],
  "e1000-82545em": [["e1000"]],
  e1000e: [["e1000e"]],
  igb: [["igb"]],
  rtl8139: [["8139cp", "8139too"]],
  vmxnet3: [["vmxnet3"]],
  ne2k_pci: [["ne2k_pci"]],
  pcnet: [["pcnet32"]],
  i82551: [["e100"]],
  i82557b: [["e100"]],
  i82559er: [["e100"]],
};

/** Modules for the guest agent's virtio-serial port. */
export const AGENT_MODULES: readonly string[] = ["virtio_pci", "virtio_console"];

/** The fw_cfg sysfs driver: the SSH host key and authorized keys reach the guest through fw_cfg. */
export const SSH_MODULES: readonly string[] = ["qemu_fw_cfg"];

/** The NIC models the built-in guest knows drivers for. */
export function supportedNicModels(): string[] {
  return Object.keys(NIC_DRIVERS).sort();
}

/** The NIC models whose drivers a kernel has, built in or as modules (e.g. a distribution image's). Pure. */
export function drivenNicModels(index: ModuleIndex): string[] {
  return supportedNicModels().filter((model) =>
    NIC_DRIVERS[model]!.every((group) =>
      group.some((m) => index.builtin.has(m) || index.byName.has(m)),
    ),
  );
}

/** A loadable module file, relative to the modules tree, with its canonical name. */
export interface ModuleFile {
  /** Canonical name (dashes turned into underscores), e.g. "virtio_net". */
  name: string;
  /** Path as written in modules.dep (usually relative to the modules tree). */
  relPath: string;
  /** Absolute path on the host. */
  path: string;
  compression: "none" | "gz" | "xz" | "zst";
}

/** The parsed module index of one kernel's modules tree. */
export interface ModuleIndex {
  /** Canonical name → path as written in modules.dep. */
  byName: Map<string, string>;
  /** Path → its direct dependencies (paths), as written in modules.dep. */
  deps: Map<string, string[]>;
  /** Canonical names of modules built into the kernel. */
  builtin: Set<string>;
}

/** Canonical module name: file base name without .ko[.gz|.xz|.zst], with "-" read as "_". */
export function moduleName(pathOrName: string): string {
  return basename(pathOrName)
    .replace(/\.ko(\.(gz|xz|zst))?$/, "")
    .replaceAll("-", "_");
}

/** Parse modules.dep ("path: dep dep ...") and modules.builtin (one path per line). Pure. */
export function parseModuleIndex(depText: string, builtinText = ""): ModuleIndex {
  const byName = new Map<string, string>();
  const deps = new Map<string, string[]>();
  for (const raw of depText.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const list = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter((s) => s !== "");
    deps.set(path, list);
    const name = moduleName(path);
    if (!byName.has(name)) byName.set(name, path);
  }
  const builtin = new Set<string>();
  for (const raw of builtinText.split("\n")) {
    const line = raw.trim();
    if (line !== "") builtin.add(moduleName(line));
  }
  return { byName, deps, builtin };
}

/**
 * Module names (canonical) to load for the given NIC models plus the guest agent's port, in a
 * valid load order (dependencies first), with builtins dropped. Pure.
 * Throws UserError naming the model and the kernel when a driver is missing.
 */
export function resolveModuleOrder(
  index: ModuleIndex,
  nicModels: readonly string[],
  kernelLabel: string,
  extra: readonly string[] = [],
): string[] {
  const wanted: string[] = [];
  const want = (name: string): void => {
    if (!index.builtin.has(name) && !wanted.includes(name)) wanted.push(name);
  };
  for (const model of nicModels) {
    const groups = NIC_DRIVERS[model];
    if (!groups) {
      throw new UserError(
        `NIC model ${JSON.stringify(model)} is not supported by the built-in guest`,
        `use one of: ${supportedNicModels().join(", ")}`,
      );
    }
    for (const group of groups) {
      const present = group.filter((m) => index.builtin.has(m) || index.byName.has(m));
      if (present.length === 0) {
        throw new UserError(
          `kernel ${kernelLabel} has no driver for NIC model ${model} (module ${group.join(" or ")})`,
          "pick another NIC model (virtio-net-pci is the usual choice) or another guest kernel",
        );
      }
      for (const m of present) want(m);
    }
  }
  for (const m of AGENT_MODULES) {
    if (!index.builtin.has(m) && !index.byName.has(m)) {
      throw new UserError(
        `kernel ${kernelLabel} has no ${m} module, which the guest agent's virtio-serial port needs`,
        "use a guest kernel with virtio support",
      );
    }
    want(m);
  }
  for (const m of extra) {
    if (!index.builtin.has(m) && !index.byName.has(m)) {
      throw new UserError(
        `kernel ${kernelLabel} has no ${m} module, which the guest's SSH server needs (its keys come through fw_cfg)`,
        "use a guest kernel built with CONFIG_FW_CFG_SYSFS (Debian's generic kernel has it)",
      );
    }
    want(m);
  }

  // Depth-first over modules.dep: each module after all of its dependencies.
  const order: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (path: string): void => {
    if (done.has(path)) return;
    if (visiting.has(path)) throw new Error(`modules.dep has a dependency cycle at ${path}`);
    visiting.add(path);
    for (const dep of index.deps.get(path) ?? []) visit(dep);
    visiting.delete(path);
    done.add(path);
    order.push(path);
  };
  for (const name of wanted) {
    const path = index.byName.get(name);
    if (path !== undefined) visit(path);
  }
  return order.map(moduleName).filter((n) => !index.builtin.has(n));
}

/** Read modules.dep and modules.builtin from a modules tree (/lib/modules/<version>). */
export async function loadModuleIndex(modulesDir: string): Promise<ModuleIndex> {
  let depText: string;
  try {
    depText = await readFile(join(modulesDir, "modules.dep"), "utf8");
  } catch (cause) {
    throw new UserError(
      `no modules.dep in ${modulesDir}`,
      "install the kernel's modules package, or run depmod for that kernel",
      undefined,
      { cause },
    );
  }
  const builtinText = await readFile(join(modulesDir, "modules.builtin"), "utf8").catch(() => "");
  return parseModuleIndex(depText, builtinText);
}

/** Resolve the module files for NIC models in a modules tree, dependencies first. */
export async function resolveModules(
  modulesDir: string,
  nicModels: readonly string[],
  kernelLabel: string,
  extra: readonly string[] = [],
): Promise<ModuleFile[]> {
  const index = await loadModuleIndex(modulesDir);
  return resolveModuleOrder(index, nicModels, kernelLabel, extra).map((name) => {
    const relPath = index.byName.get(name)!;
    return {
      name,
      relPath,
      path: isAbsolute(relPath) ? relPath : join(modulesDir, relPath),
      compression: compressionOf(relPath),
    };
  });
}

function compressionOf(path: string): ModuleFile["compression"] {
  if (path.endsWith(".ko.gz")) return "gz";
  if (path.endsWith(".ko.xz")) return "xz";
  if (path.endsWith(".ko.zst")) return "zst";
  return "none";
}

/** A module's bytes as insmod needs them: decompressed on the host (busybox insmod reads plain .ko). */
export async function decompressModule(raw: Buffer, m: ModuleFile): Promise<Buffer> {
  switch (m.compression) {
    case "none":
      return raw;
    case "gz":
      return gunzipSync(raw);
    case "xz":
      return runDecompressor(["xz", "-dc"], raw);
    case "zst":
      return runDecompressor(["zstd", "-dc"], raw);
  }
}

async function runDecompressor(argv: string[], input: Buffer): Promise<Buffer> {
  const [file, ...args] = argv as [string, ...string[]];
  try {
    const r = await execa(file, args, { input, encoding: "buffer", stripFinalNewline: false });
    return Buffer.from(r.stdout);
  } catch (cause) {
    const e = cause as { code?: string; exitCode?: number; stderr?: Uint8Array };
    if (e.code === "ENOENT") {
      throw new UserError(
        `${file} is needed to unpack compressed kernel modules`,
        `install ${file}`,
      );
    }
    throw new CommandError(
      argv,
      e.exitCode ?? null,
      e.stderr ? Buffer.from(e.stderr).toString() : "",
      { cause },
    );
  }
}
