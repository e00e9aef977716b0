// `qnet image list`: what the cache holds, and the known images not built yet.
import { statSync } from "node:fs";
import { join } from "node:path";
import { KNOWN_IMAGES } from "../model/images.js";
import { defaultImageCacheDir, listCache } from "./cache.js";

export interface ImageListEntry {
  name: string;
  status: "cached" | "not built";
  kind: "built" | "download" | null;
  description: string | null;
  /** Cache key (directory name), null when not built. */
  key: string | null;
  disk: string | null;
  format: string | null;
  /** Bytes the entry takes on disk (all its files). */
  bytes: number | null;
  virtualSize: number | null;
  createdAt: string | null;
  suite: string | null;
  mirror: string | null;
  kernelVersion: string | null;
  url: string | null;
  buildSeconds: number | null;
}

export function listImages(cacheDir = defaultImageCacheDir()): ImageListEntry[] {
  const entries: ImageListEntry[] = listCache(cacheDir).map(({ dir, manifest: m }) => ({
    name: m.name,
    status: "cached",
    kind: m.kind,
    description:
      KNOWN_IMAGES.find((k) => k.name === m.name && m.kind === "built")?.description ?? null,
    key: m.key,
    disk: join(dir, m.disk),
    format: m.format,
    bytes: [m.disk, m.kernel, m.initrd]
      .filter((f): f is string => f !== undefined)
      .reduce((sum, f) => sum + sizeOf(join(dir, f)), 0),
    virtualSize: m.virtualSize,
    createdAt: m.createdAt,
    suite: m.suite ?? null,
    mirror: m.mirror ?? null,
    kernelVersion: m.kernelVersion ?? null,
    url: m.url ?? null,
    buildSeconds: m.buildSeconds ?? null,
  }));
  for (const k of KNOWN_IMAGES) {
    if (entries.some((e) => e.kind === "built" && e.name === k.name)) continue;
    entries.push({
      name: k.name,
      status: "not built",
      kind: null,
      description: k.description,
      key: null,
      disk: null,
      format: null,
      bytes: null,
      virtualSize: null,
      createdAt: null,
      suite: k.suite,
      mirror: null,
      kernelVersion: null,
      url: null,
      buildSeconds: null,
    });
  }
  return entries;
}

function sizeOf(path: string): number {
  try {
    return statSync(path).blocks * 512;
  } catch {
    return 0;
  }
}
