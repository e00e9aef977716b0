// What goes into a built image: the mmdebstrap argv, the files qnet adds, the kernel command line; and its cache key.
import { createHash } from "node:crypto";
import type { KnownImage } from "../model/images.js";

/** Bump when anything below changes the image for the same inputs: it is part of the cache key. */
export const IMAGE_BUILDER_VERSION = "qnet-image-builder-4";

export const DEFAULT_MIRROR = "http://deb.debian.org/debian";
/** Security updates come with the default mirror only: other mirrors rarely carry debian-security. */
export const DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security";

/**
 * The packages of every image. Networking: cloud-init renders network-config v2 for systemd-networkd
 * (its own DHCP client; no ifupdown, netplan or dhclient needed), and systemd-resolved takes the DNS
 * servers that networkd learns by DHCP or from the static configuration. udev starts the guest agent
 * when its virtio port appears; dbus lets cloud-init set the hostname through hostnamed; sudo carries
 * the login's passwordless rule; e2fsprogs lets cloud-init grow the root file system.
 */
export const IMAGE_PACKAGES: readonly string[] = [
  "linux-image-cloud-amd64",
  "systemd",
  "systemd-sysv",
  "systemd-resolved",
  "udev",
  "dbus",
  "cloud-init",
  "openssh-server",
  "qemu-guest-agent",
  "iproute2",
  "iputils-ping",
  "sudo",
  "netbase",
  "e2fsprogs",
];

/** Size of the root file system (sparse: the qcow2 holds only what is written). */
export const ROOT_FS_BYTES = 4 * 1024 ** 3;
export const ROOT_FS_LABEL = "qnet-root";

/**
 * What qnet must pass to boot the image's kernel directly: the disk is the VM's first virtio drive
 * (/dev/vda, a bare ext4 file system, no partition table); the console is the first serial port.
 * The rest keeps the boot short under TCG (one UART, no PS/2 probing, no TSC calibration).
 */
export const KERNEL_APPEND = [
  "root=/dev/vda",
  "rw",
  "console=ttyS0",
  "net.ifnames=0",
  "panic=-1",
  "8250.nr_uarts=1",
  "i8042.noaux",
  "i8042.nokbd",
  "tsc=reliable",
  "no_timer_check",
  "random.trust_cpu=on",
].join(" ");

export interface ImageRecipe {
  name: string;
  suite: string;
  mirror: string;
  /** apt sources lines, in order. */
  sources: string[];
  packages: string[];
  /** Files written into the image: path inside the image -> content. */
  files: Record<string, string>;
  append: string;
  builder: string;
}

/** The recipe for a known image and mirror. `mirror` must already be checked by imageMirrorProblem. */
export function imageRecipe(image: KnownImage, mirror = DEFAULT_MIRROR): ImageRecipe {
  const m = mirror.replace(/\/+$/, "");
  const sources = [`deb ${m} ${image.suite} main`, `deb ${m} ${image.suite}-updates main`];
  if (m === DEFAULT_MIRROR)
    sources.push(`deb ${DEFAULT_SECURITY_MIRROR} ${image.suite}-security main`);
  // apt inside the image needs CA certificates to fetch over https.
  const packages = m.startsWith("https:")
    ? [...IMAGE_PACKAGES, "ca-certificates"]
    : [...IMAGE_PACKAGES];
  return {
    name: image.name,
    suite: image.suite,
    mirror: m,
    sources,
    packages,
    files: imageFiles(),
    append: KERNEL_APPEND,
    builder: IMAGE_BUILDER_VERSION,
  };
}

/** Why a mirror URL is refused, or null. It reaches apt's sources list as one word. */
export function imageMirrorProblem(mirror: string): string | null {
  let u: URL;
  try {
    u = new URL(mirror);
  } catch {
    return "not a URL";
  }
  if (!["http:", "https:", "file:"].includes(u.protocol)) return "use an http, https or file URL";
  if (/[\s"'[\]]/.test(mirror))
    return "spaces, quotes and brackets are not allowed in a mirror URL";
  return null;
}

/** sha256 over every input of the build: the name of its cache entry. */
export function imageKey(r: ImageRecipe): string {
  const h = createHash("sha256");
  const field = (label: string, value: string) => {
    h.update(`${label}\0${Buffer.byteLength(value)}\0`);
    h.update(value);
  };
  field("builder", r.builder);
  field("name", r.name);
  field("suite", r.suite);
  for (const s of r.sources) field("source", s);
  for (const p of r.packages) field("package", p);
  for (const [path, content] of Object.entries(r.files).sort(([a], [b]) => (a < b ? -1 : 1))) {
    field("file", path);
    field("content", content);
  }
  field("append", r.append);
  field("fs-size", String(ROOT_FS_BYTES));
  return h.digest("hex");
}

/**
 * The mmdebstrap argv that builds the root file system into `target` (a directory). `overlay` is a
 * directory, relative to mmdebstrap's working directory, copied into the image before any package is
 * installed (so the initramfs is generated once, with qnet's configuration).
 */
export function mmdebstrapArgv(r: ImageRecipe, target: string, overlay: string): string[] {
  return [
    "mmdebstrap",
    "--mode=root",
    "--format=directory",
    "--variant=apt",
    `--include=${r.packages.join(",")}`,
    '--aptopt=Acquire::Languages "none"',
    // Documentation, manual pages and translations: a third of the image, unused in a lab.
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    // etc/initramfs-tools/modules is a conffile: keep qnet's version (no prompt, nothing to ask).
    "--dpkgopt=force-confold",
    `--setup-hook=sync-in ${overlay} /`,
    r.suite,
    target,
    ...r.sources,
  ];
}

/** Files qnet writes into every image, before the packages (see mmdebstrapArgv). */
function imageFiles(): Record<string, string> {
  const header = "# Written by qnet's image builder.\n";
  return {
    // NoCloud only (qnet's seed ISO): no probing of cloud metadata services that do not exist here.
    // networkd renders the network-config. Only the modules qnet's seed uses run: under TCG every
    // module costs a Python import, and grub-dpkg, locale and apt-configure alone took 8 s of a boot.
    // (The image's sshd refuses passwords by itself: see sshd_config.d below.)
    "etc/cloud/cloud.cfg.d/90-qnet.cfg": `${header}datasource_list: [NoCloud, None]
system_info:
  network:
    renderers: [networkd]
    activators: [networkd]
cloud_init_modules:
  - seed_random
  - bootcmd
  - write-files
  - resizefs
  - set_hostname
  - update_hostname
  - update_etc_hosts
  - users-groups
  - ssh
cloud_config_modules:
  - runcmd
cloud_final_modules:
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - scripts-user
  - final-message
`,
    // The root file system is a bare virtio disk: the initramfs needs only these two drivers (ext4 is
    // built into the cloud kernel). A small initramfs unpacks faster under TCG than MODULES=most.
    "etc/initramfs-tools/conf.d/90-qnet.conf": `${header}MODULES=list\n`,
    "etc/initramfs-tools/modules": `${header}virtio_pci\nvirtio_blk\n`,
    // Logins are by key only. Set here rather than by cloud-init's set-passwords module, which
    // restarts sshd (3 to 10 s of a TCG boot).
    "etc/ssh/sshd_config.d/10-qnet.conf": `${header}PasswordAuthentication no\nKbdInteractiveAuthentication no\n`,
    // qnet's readiness is the guest agent answering. Debian starts it once its virtio port appears,
    // but its default dependencies hold it until sysinit.target, which waits for both of cloud-init's
    // first stages (a minute and more under TCG). It needs only the root file system.
    "etc/systemd/system/qemu-guest-agent.service.d/10-qnet-early.conf": `${header}[Unit]
DefaultDependencies=no
After=local-fs.target
Before=shutdown.target
Conflicts=shutdown.target
`,
  };
}

/** Units enabled in the image (systemd-networkd is not enabled by Debian's package). */
export const ENABLE_UNITS = ["systemd-networkd.service"] as const;
/** Units that would start apt or disk maintenance in the middle of a lab, or slow the boot. */
export const DISABLE_UNITS = [
  "apt-daily.timer",
  "apt-daily-upgrade.timer",
  "dpkg-db-backup.timer",
  "fstrim.timer",
  "e2scrub_all.timer",
  // Looks for LVM snapshots at every boot: half a minute of CPU under TCG, and there is no LVM here.
  "e2scrub_reap.service",
] as const;
