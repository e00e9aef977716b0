// A VM's `image:` made real: a built image (from the cache, or built now) or a verified download.
import { EXIT, UserError } from "../errors.js";
import { type ImageRef, knownImage, knownImageNames } from "../model/images.js";
import { buildImage } from "./build.js";
import { fetchImage } from "./download.js";

export interface ResolveImageOptions {
  /** Cache root; default ~/.cache/qnet/images. */
  cacheDir?: string;
  /** Debian mirror for images built here. */
  mirror?: string;
  onProgress?: (msg: string) => void;
  /** Download progress: bytes so far and the total (null when unknown). */
  onBytes?: (received: number, total: number | null) => void;
}

/** A base image ready to put an overlay on, and how to boot it. */
export interface ResolvedImage {
  /** `debian-12`, or the URL. */
  ref: string;
  /** Absolute path of the cached base; never written (mode 0444). */
  disk: string;
  format: "qcow2" | "raw";
  /** sha256 of the base as cached, to prove it unchanged. */
  sha256: string;
  /**
   * Direct kernel boot (built images): -kernel, -initrd and -append, with the disk as the VM's first
   * virtio drive. null: the image boots from its own disk through the firmware (downloaded images).
   */
  boot: { kernel: string; initrd: string; append: string } | null;
  /** NIC models the image's kernel drives, when known (built images). */
  nicModels: string[] | null;
  cached: boolean;
}

/**
 * Resolve a VM's image reference: a known name is built on first use and found in the cache after;
 * a URL is downloaded once and verified. Unknown names fail with the list of known ones.
 */
export async function resolveImage(
  ref: ImageRef | string,
  opts: ResolveImageOptions = {},
): Promise<ResolvedImage> {
  const r: ImageRef = typeof ref === "string" ? { kind: "named", name: ref } : ref;
  const common = {
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  };
  if (r.kind === "named") {
    if (!knownImage(r.name)) {
      throw new UserError(
        `unknown image "${r.name}"`,
        `known images: ${knownImageNames().join(", ")}; or give { url, sha256 }`,
        EXIT.usage,
      );
    }
    const b = await buildImage(r.name, {
      ...common,
      ...(opts.mirror ? { mirror: opts.mirror } : {}),
    });
    return {
      ref: r.name,
      disk: b.disk,
      format: b.format,
      sha256: b.manifest.diskSha256,
      boot: { kernel: b.kernel, initrd: b.initrd, append: b.append },
      nicModels: b.nicModels,
      cached: b.cached,
    };
  }
  const f = await fetchImage(r.url, r.sha256, {
    ...common,
    ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
  });
  return {
    ref: r.url,
    disk: f.disk,
    format: f.format,
    sha256: f.sha256,
    boot: null,
    nicModels: null,
    cached: f.cached,
  };
}
