// Builds a Debian image (mmdebstrap -> ext4 -> qcow2, plus kernel and initrd), or finds it in the cache.
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { chmod, copyFile, mkdir, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { CommandError, EXIT, UserError } from "../errors.js";
import { compareVersions } from "../guest/build.js";
import { drivenNicModels, parseModuleIndex } from "../guest/modules.js";
import { knownImage, knownImageNames } from "../model/images.js";
import {
  defaultImageCacheDir,
  type ImageManifest,
  MANIFEST,
  makeWorkDir,
  publish,
  readManifest,
  removeTree,
  sweepAbandoned,
} from "./cache.js";
import { diskInfo } from "./qemu-img.js";
import {
  DISABLE_UNITS,
  ENABLE_UNITS,
  type ImageRecipe,
  imageKey,
  imageMirrorProblem,
  imageRecipe,
  mmdebstrapArgv,
  ROOT_FS_BYTES,
  ROOT_FS_LABEL,
} from "./recipe.js";

export interface BuildImageOptions {
  /** Debian mirror for the suite and its updates (default deb.debian.org). */
  mirror?: string;
  /** Cache root; default defaultImageCacheDir(). */
  cacheDir?: string;
  onProgress?: (msg: string) => void;
}

/** A built image in the cache, with absolute paths. */
export interface BuiltImage {
  name: string;
  key: string;
  dir: string;
  disk: string;
  format: "qcow2";
  kernel: string;
  initrd: string;
  /** Kernel command line qnet must pass (root=, console=, ...). */
  append: string;
  nicModels: string[];
  manifest: ImageManifest;
  /** True when the cache already held it. */
  cached: boolean;
}

/** The cache entry a build of `name` (with `mirror`) would use, and its recipe. */
export function imagePlan(name: string, mirror?: string): { recipe: ImageRecipe; key: string } {
  const known = knownImage(name);
  if (!known) {
    throw new UserError(
      `unknown image "${name}"`,
      `known images: ${knownImageNames().join(", ")}`,
      EXIT.usage,
    );
  }
  if (mirror !== undefined) {
    const problem = imageMirrorProblem(mirror);
    if (problem)
      throw new UserError(`mirror ${JSON.stringify(mirror)}: ${problem}`, undefined, EXIT.usage);
  }
  const recipe = imageRecipe(known, mirror);
  return { recipe, key: imageKey(recipe) };
}

/** Build a known image, or return the cached build of the same inputs. */
export async function buildImage(name: string, opts: BuildImageOptions = {}): Promise<BuiltImage> {
  const progress = opts.onProgress ?? (() => {});
  const { recipe, key } = imagePlan(name, opts.mirror);
  const cacheDir = opts.cacheDir ?? defaultImageCacheDir();
  const entry = join(cacheDir, key);
  const cached = readManifest(entry);
  if (cached) {
    progress(`image ${name} ${key.slice(0, 12)} found in the cache`);
    return builtImage(entry, cached, true);
  }
  await checkBuildTools();
  await sweepAbandoned(cacheDir);
  const work = makeWorkDir(cacheDir, key);
  const t0 = Date.now();
  try {
    const manifest = await buildInto(work, recipe, key, progress);
    manifest.buildSeconds = Math.round((Date.now() - t0) / 1000);
    await writeFile(join(work, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, {
      mode: 0o444,
    });
    const mine = await publish(work, entry);
    progress(
      mine
        ? `image ${name} ${key.slice(0, 12)} built in ${manifest.buildSeconds} s: ${join(entry, manifest.disk)}`
        : `image ${name} ${key.slice(0, 12)} was built meanwhile by another qnet; using that one`,
    );
    const m = readManifest(entry);
    if (!m) throw new Error(`internal: published image ${entry} has no manifest`);
    return builtImage(entry, m, !mine);
  } catch (e) {
    await removeTree(work).catch(() => {});
    throw e;
  }
}

function builtImage(dir: string, m: ImageManifest, cached: boolean): BuiltImage {
  if (m.kind !== "built" || !m.kernel || !m.initrd || !m.append) {
    throw new Error(`internal: ${dir} is not a built image`);
  }
  return {
    name: m.name,
    key: m.key,
    dir,
    disk: join(dir, m.disk),
    format: "qcow2",
    kernel: join(dir, m.kernel),
    initrd: join(dir, m.initrd),
    append: m.append,
    nicModels: m.nicModels ?? [],
    manifest: m,
    cached,
  };
}

/** mmdebstrap, mke2fs and qemu-img must be installed, and the build must run as root. */
async function checkBuildTools(): Promise<void> {
  const tools: [string, string[], string][] = [
    ["mmdebstrap", ["--version"], "mmdebstrap"],
    ["mke2fs", ["-V"], "e2fsprogs"],
    ["qemu-img", ["--version"], "qemu-utils"],
  ];
  for (const [bin, args, pkg] of tools) {
    const r = await execa(bin, args, { reject: false });
    if ((r.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
      throw new UserError(
        `${bin} is not installed; qnet builds images with it`,
        `apt-get install --no-install-recommends ${pkg}`,
        EXIT.environment,
      );
    }
  }
  if (process.getuid?.() !== 0) {
    throw new UserError(
      "building an image needs root: mmdebstrap installs packages into a chroot and mke2fs must keep their owners",
      "run `sudo qnet image build NAME` once; the image is cached for every later use",
      EXIT.environment,
    );
  }
}

async function buildInto(
  work: string,
  r: ImageRecipe,
  key: string,
  progress: (msg: string) => void,
): Promise<ImageManifest> {
  const overlay = join(work, "overlay");
  const root = join(work, "root");
  for (const [path, content] of Object.entries(r.files)) {
    await mkdir(join(overlay, path, ".."), { recursive: true });
    await writeFile(join(overlay, path), content, { mode: 0o644 });
  }

  progress(
    `image ${r.name}: mmdebstrap ${r.suite} from ${r.mirror} (${r.packages.length} packages and their dependencies; about 2 minutes)`,
  );
  await runLogged(mmdebstrapArgv(r, root, "overlay"), work, progress);
  await customize(root);

  const boot = await bootFiles(root);
  await copyFile(boot.kernel, join(work, "vmlinuz"));
  await copyFile(boot.initrd, join(work, "initrd.img"));
  const index = parseModuleIndex(
    await readFile(join(root, "lib/modules", boot.version, "modules.dep"), "utf8"),
    await readFile(join(root, "lib/modules", boot.version, "modules.builtin"), "utf8").catch(
      () => "",
    ),
  );
  const nicModels = drivenNicModels(index);

  progress(`image ${r.name}: ext4 file system (mke2fs -d) and qcow2 (qemu-img convert)`);
  const raw = join(work, "root.ext4");
  const fh = await open(raw, "wx", 0o600);
  await fh.truncate(ROOT_FS_BYTES);
  await fh.close();
  await run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", ROOT_FS_LABEL, "-m", "1", "-d", root, raw]);
  await removeTree(root);
  const disk = join(work, "disk.qcow2");
  await run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, disk]);
  await rm(raw);
  await rm(overlay, { recursive: true });
  const info = await diskInfo(disk);
  // The base is never written: read-only files make a mistake fail instead of corrupting it.
  for (const f of ["disk.qcow2", "vmlinuz", "initrd.img"]) await chmod(join(work, f), 0o444);
  await chmod(work, 0o755);
  return {
    kind: "built",
    name: r.name,
    key,
    disk: "disk.qcow2",
    format: "qcow2",
    diskSha256: await sha256File(disk),
    virtualSize: info.virtualSize,
    createdAt: new Date().toISOString(),
    kernel: "vmlinuz",
    initrd: "initrd.img",
    append: r.append,
    kernelVersion: boot.version,
    nicModels,
    suite: r.suite,
    mirror: r.mirror,
    sources: r.sources,
    packages: r.packages,
    builder: r.builder,
  };
}

/**
 * What the packages leave that every VM must not share: SSH host keys (cloud-init installs the VM's
 * own), the machine id (systemd makes one per VM at first boot; networkd derives its DHCP client id
 * from it). Then the units qnet wants on or off, through the image's own systemctl.
 */
async function customize(root: string): Promise<void> {
  await writeFile(join(root, "etc/fstab"), "/dev/vda / ext4 rw,discard,errors=remount-ro 0 1\n");
  await writeFile(join(root, "etc/hostname"), "localhost\n");
  await writeFile(join(root, "etc/machine-id"), "");
  await rm(join(root, "var/lib/dbus/machine-id"), { force: true });
  for (const f of await readdir(join(root, "etc/ssh"))) {
    if (f.startsWith("ssh_host_")) await rm(join(root, "etc/ssh", f));
  }
  const unitExists = (u: string) =>
    ["lib/systemd/system", "usr/lib/systemd/system"].some((d) => existsSync(join(root, d, u)));
  const disable = DISABLE_UNITS.filter(unitExists);
  await run(["chroot", root, "systemctl", "enable", ...ENABLE_UNITS]);
  if (disable.length > 0) await run(["chroot", root, "systemctl", "disable", ...disable]);
}

/** The newest kernel in the image's /boot and its initrd. */
async function bootFiles(
  root: string,
): Promise<{ kernel: string; initrd: string; version: string }> {
  const names = await readdir(join(root, "boot"));
  const versions = names
    .filter((n) => n.startsWith("vmlinuz-"))
    .map((n) => n.slice("vmlinuz-".length))
    .sort(compareVersions);
  const version = versions.at(-1);
  if (!version || !names.includes(`initrd.img-${version}`)) {
    throw new Error(`the image has no kernel and initrd in /boot (found: ${names.join(", ")})`);
  }
  return {
    kernel: join(root, "boot", `vmlinuz-${version}`),
    initrd: join(root, "boot", `initrd.img-${version}`),
    version,
  };
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

async function run(argv: string[]): Promise<void> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false });
  if (r.failed) throw new CommandError(argv, r.exitCode ?? null, String(r.stderr || r.stdout));
}

/** mmdebstrap's informational lines that say nothing about progress. */
const QUIET_INFO =
  /^(running (--|special)|chroot architecture|finding correct|automatically chosen|using )/;

/** Run a long command, passing its "I:" lines on as progress; on failure its last lines are the error. */
async function runLogged(
  argv: string[],
  cwd: string,
  progress: (msg: string) => void,
): Promise<void> {
  const child = execa(argv[0]!, argv.slice(1), { cwd, reject: false, all: true, buffer: false });
  const tail: string[] = [];
  let partial = "";
  child.all?.setEncoding("utf8");
  child.all?.on("data", (d: string) => {
    partial += d;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      const m = /^I: (.*)$/.exec(line);
      if (m && !QUIET_INFO.test(m[1]!)) progress(`  ${m[1]}`);
    }
  });
  const r = await child;
  if (r.failed) {
    if ((r.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
      throw new UserError(
        `${argv[0]} is not installed`,
        `apt-get install ${argv[0]}`,
        EXIT.environment,
      );
    }
    throw new CommandError(argv, r.exitCode ?? null, [...tail, partial].join("\n"));
  }
}
