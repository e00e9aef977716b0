// The disks of image and disk VMs on the host: overlays over cached base images (made after the image
// is built or downloaded), and cloud-init seeds carrying the lab's key and each VM's pinned host key.
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { byteMeter } from "../image/progress.js";
import { createOverlay } from "../image/qemu-img.js";
import { resolveImage } from "../image/resolve.js";
import type { WantOverlay } from "../kinds/overlay.js";
import { imageName } from "../kinds/overlay.js";
import type { WantSeed } from "../kinds/seed.js";
import type { Action } from "../kinds/types.js";
import type { ImageRef } from "../model/images.js";
import type { Lab } from "../model/lab.js";
import { labSshKey, vmHostKey } from "../ssh/keys.js";
import { writeCloudInitSeed } from "./cloud-init-seed.js";
import { writeFileAtomic } from "./files.js";

/** A base image ready for overlays: from the cache, or built or downloaded now (with progress). */
export function baseImage(ref: ImageRef, progress: (m: string) => void) {
  return resolveImage(ref, {
    onProgress: (m) => progress(`image ${imageName(ref)}: ${m}`),
    onBytes: byteMeter(process.stderr, `image ${imageName(ref)}`),
  });
}

export async function applyOverlays(
  actions: Action[],
  progress: (m: string) => void,
): Promise<void> {
  // One resolution per image, shared by the VMs on it (a build runs once).
  const bases = new Map<string, ReturnType<typeof baseImage>>();
  for (const a of actions) {
    const w = a.payload as WantOverlay;
    const key = imageName(w.image);
    if (!bases.has(key)) bases.set(key, baseImage(w.image, progress));
    const base = await bases.get(key)!;
    mkdirSync(dirname(w.path), { recursive: true, mode: 0o700 });
    await createOverlay({ base: base.disk, baseFormat: base.format, path: w.path });
  }
}

/** The lab's login key and the VM's host key, made once in the state directory and reused. */
export async function guestKeys(lab: Lab, stateDir: string, vm: string) {
  const [login, host] = await Promise.all([
    labSshKey(stateDir, lab.name, lab.sshKey ?? undefined),
    vmHostKey(stateDir, vm),
  ]);
  return { login, host };
}

export async function applySeeds(actions: Action[], lab: Lab, stateDir: string): Promise<void> {
  mkdirSync(join(stateDir, "vm"), { recursive: true, mode: 0o700 });
  for (const a of actions) {
    const w = a.payload as WantSeed;
    const { login, host } = await guestKeys(lab, stateDir, w.vm.name);
    await writeCloudInitSeed(lab, w.vm, w.path, join(stateDir, "vm"), {
      authorizedKeys: [login.publicKey],
      hostKey: { privateKey: host.privateKey, publicKey: host.publicKey },
    });
    writeFileAtomic(w.stampFile, `${w.stamp}\n`);
  }
}
