// The image cache (~/.cache/qnet/images): one directory per entry, published whole by a rename, never half.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve, sep } from "node:path";
import { execa } from "execa";
import { UserError } from "../errors.js";

/** `${XDG_CACHE_HOME:-$HOME/.cache}/qnet/images`. */
export function defaultImageCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(homedir(), ".cache");
  return join(base, "qnet", "images");
}

/** manifest.json of a cache entry. Paths are relative to the entry's directory. */
export interface ImageManifest {
  kind: "built" | "download";
  /** Image name (`debian-12`) or, for downloads, the file name of the URL. */
  name: string;
  /** The entry's directory name: the build's input hash, or `url-<sha256>`. */
  key: string;
  disk: string;
  format: "qcow2" | "raw";
  /** sha256 of the disk file as published (for a download: the verified checksum). */
  diskSha256: string;
  virtualSize: number;
  createdAt: string;
  /** Built images: direct kernel boot. */
  kernel?: string;
  initrd?: string;
  append?: string;
  kernelVersion?: string;
  nicModels?: string[];
  suite?: string;
  mirror?: string;
  sources?: string[];
  packages?: string[];
  builder?: string;
  buildSeconds?: number;
  /** Downloads. */
  url?: string;
}

export const MANIFEST = "manifest.json";

/** The manifest of a published entry, or null when the entry is absent or not a complete one. */
export function readManifest(entryDir: string): ImageManifest | null {
  try {
    const m = JSON.parse(readFileSync(join(entryDir, MANIFEST), "utf8")) as ImageManifest;
    if (typeof m.disk !== "string" || !existsSync(join(entryDir, m.disk))) return null;
    return m;
  } catch {
    return null;
  }
}

/** Every published entry of the cache, sorted by name then date. */
export function listCache(cacheDir: string): { dir: string; manifest: ImageManifest }[] {
  let names: string[];
  try {
    names = readdirSync(cacheDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => !n.startsWith("."))
    .flatMap((n) => {
      const manifest = readManifest(join(cacheDir, n));
      return manifest ? [{ dir: join(cacheDir, n), manifest }] : [];
    })
    .sort(
      (a, b) =>
        a.manifest.name.localeCompare(b.manifest.name) ||
        a.manifest.createdAt.localeCompare(b.manifest.createdAt),
    );
}

/**
 * A private work directory inside the cache (same file system as the entries, so publishing is a
 * rename). Its name carries our PID so a later run can tell an abandoned one (see sweepAbandoned).
 */
export function makeWorkDir(cacheDir: string, key: string): string {
  mkdirSync(cacheDir, { recursive: true, mode: 0o755 });
  const dir = join(cacheDir, `.tmp-${process.pid}-${randomBytes(4).toString("hex")}-${key}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

/**
 * Move a finished work directory to its entry name. Returns false when another build published the
 * same entry first (the work directory is then removed and theirs is used).
 */
export async function publish(workDir: string, entryDir: string): Promise<boolean> {
  try {
    renameSync(workDir, entryDir);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code === "ENOTEMPTY" || code === "EEXIST") && readManifest(entryDir)) {
      await removeTree(workDir);
      return false;
    }
    throw e;
  }
}

/** Remove work directories left by builds whose process is gone (killed, or the machine rebooted). */
export async function sweepAbandoned(cacheDir: string): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(cacheDir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^\.tmp-(\d+)-/.exec(n);
    if (!m || pidAlive(Number(m[1]))) continue;
    await removeTree(join(cacheDir, n));
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Delete a directory tree that may hold a root file system under construction. mmdebstrap mounts
 * /proc, /sys and device nodes inside its target; if it was killed, those mounts may remain, and a
 * recursive delete would walk into the host's /sys or /dev. They are unmounted first (deepest
 * first); if one cannot be, nothing is deleted.
 */
export async function removeTree(dir: string): Promise<void> {
  const root = resolve(dir);
  const mounts = mountsUnder(root);
  for (const m of mounts) {
    await execa("umount", ["--lazy", m], { reject: false });
  }
  const left = mountsUnder(root);
  if (left.length > 0) {
    throw new UserError(
      `cannot remove ${root}: ${left.length} file systems are still mounted inside it (${left[0]})`,
      `unmount them (umount -R ${root}) and delete the directory`,
    );
  }
  rmSync(root, { recursive: true, force: true });
}

/** Mount points at or below `root`, deepest first, from /proc/self/mountinfo. */
function mountsUnder(root: string): string[] {
  let text: string;
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const points = text
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => p !== undefined)
    // mountinfo escapes space, tab, newline and backslash as octal.
    .map((p) =>
      p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))),
    )
    .filter((p) => p === root || p.startsWith(root + sep));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}
