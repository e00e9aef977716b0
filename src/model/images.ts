// Disk images a VM can run: the names qnet builds itself (`image: debian-12`) and downloaded ones (`image: { url, sha256 }`).

/** A distribution image qnet builds with mmdebstrap. */
export interface KnownImage {
  name: string;
  /** Debian suite (codename) the image is built from. */
  suite: string;
  description: string;
  /** QEMU NIC models its kernel drives (Debian's cloud kernel has virtio-net and vmxnet3, not e1000). */
  nicModels: readonly string[];
}

const CLOUD_KERNEL_NICS = [
  "virtio-net-pci",
  "virtio-net",
  "virtio-net-pci-non-transitional",
  "vmxnet3",
];

/** Every image name `image:` accepts, in the order `qnet image list` shows them. */
export const KNOWN_IMAGES: readonly KnownImage[] = [
  {
    name: "debian-12",
    suite: "bookworm",
    description: "Debian 12 (bookworm), cloud kernel",
    nicModels: CLOUD_KERNEL_NICS,
  },
  {
    name: "debian-13",
    suite: "trixie",
    description: "Debian 13 (trixie), cloud kernel",
    nicModels: CLOUD_KERNEL_NICS,
  },
];

export function knownImage(name: string): KnownImage | undefined {
  return KNOWN_IMAGES.find((i) => i.name === name);
}

export const knownImageNames = (): string[] => KNOWN_IMAGES.map((i) => i.name);

/** What a VM's `image:` names, after validation. */
export type ImageRef =
  | { kind: "named"; name: string }
  | { kind: "url"; url: string; sha256: string };

export const SHA256_RE = /^[0-9a-fA-F]{64}$/;

/**
 * Why an image URL is refused, or null. Only http and https: the URL reaches a downloader, and a
 * `file:` or other scheme would let a topology file make qnet copy arbitrary local files into its cache.
 */
export function imageUrlProblem(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "not a URL";
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return `scheme ${u.protocol} is not allowed; use http or https`;
  }
  if (u.username || u.password) return "credentials in the URL are not allowed";
  return null;
}

/** The user a disk or image VM's cloud-init creates, unless `sshUser:` names another. */
export const DEFAULT_SSH_USER = "qnet";

/**
 * Guest login names: they reach cloud-init's YAML, sudoers and the ssh command line. The POSIX
 * portable user-name set (lower case), at most 32 characters; `root` is refused (cloud-init disables
 * root logins).
 */
export const SSH_USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
