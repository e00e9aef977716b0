// Downloads an image by URL once: streamed to a work file, sha256 verified, format checked, then cached.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { chmod, rename, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { EXIT, UserError } from "../errors.js";
import { imageUrlProblem, SHA256_RE } from "../model/images.js";
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
import { baseImageProblem, diskInfo } from "./qemu-img.js";

export interface FetchImageOptions {
  cacheDir?: string;
  onProgress?: (msg: string) => void;
  /** Bytes received so far and the total (null when the server sends no length). */
  onBytes?: (received: number, total: number | null) => void;
  /** Time without a byte before the download is abandoned (default 60 s). */
  idleTimeoutMs?: number;
}

export interface FetchedImage {
  url: string;
  sha256: string;
  dir: string;
  disk: string;
  format: "qcow2" | "raw";
  manifest: ImageManifest;
  cached: boolean;
}

/** The cache entry of a download: named by its checksum, so the same file is kept once. */
export const downloadKey = (sha256: string) => `url-${sha256.toLowerCase()}`;

/**
 * The image at `url`, downloaded once. A checksum mismatch, an HTTP error or a file that is not a
 * standalone qcow2 or raw image fails with a UserError, and the partial download is deleted.
 */
export async function fetchImage(
  url: string,
  sha256: string | undefined,
  opts: FetchImageOptions = {},
): Promise<FetchedImage> {
  const progress = opts.onProgress ?? (() => {});
  const problem = imageUrlProblem(url);
  if (problem) throw new UserError(`image URL ${JSON.stringify(url)}: ${problem}`);
  if (sha256 === undefined) {
    throw new UserError(
      `image URL ${url} has no sha256: qnet verifies every download`,
      "add `sha256: <64 hex digits>` (sha256sum FILE prints it)",
    );
  }
  if (!SHA256_RE.test(sha256))
    throw new UserError(`sha256 ${JSON.stringify(sha256)} is not 64 hex digits`);
  const want = sha256.toLowerCase();
  const cacheDir = opts.cacheDir ?? defaultImageCacheDir();
  const key = downloadKey(want);
  const entry = join(cacheDir, key);
  const cached = readManifest(entry);
  if (cached) {
    progress(`image ${url} found in the cache (${key.slice(0, 16)})`);
    return fetched(entry, cached, true);
  }
  await sweepAbandoned(cacheDir);
  const work = makeWorkDir(cacheDir, key);
  try {
    const part = join(work, "download.part");
    progress(`downloading ${url}`);
    const got = await download(url, part, opts);
    if (got !== want) {
      throw new UserError(
        `checksum mismatch for ${url}: expected sha256 ${want}, the download has ${got}`,
        "the file changed on the server, or the sha256 in the topology is wrong; nothing was kept",
      );
    }
    const info = await diskInfo(part);
    const bad = baseImageProblem(info);
    if (bad) throw new UserError(`image ${url} is refused: ${bad}`);
    const format = info.format as "qcow2" | "raw";
    const disk = `disk.${format}`;
    await rename(part, join(work, disk));
    const manifest: ImageManifest = {
      kind: "download",
      name: basename(new URL(url).pathname) || "image",
      key,
      disk,
      format,
      diskSha256: want,
      virtualSize: info.virtualSize,
      createdAt: new Date().toISOString(),
      url,
    };
    await writeFile(join(work, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, {
      mode: 0o444,
    });
    await chmod(join(work, disk), 0o444);
    await chmod(work, 0o755);
    await publish(work, entry);
    const m = readManifest(entry);
    if (!m) throw new Error(`internal: published image ${entry} has no manifest`);
    progress(`image ${url} verified (sha256 ${want.slice(0, 16)}…, ${format}) and cached`);
    return fetched(entry, m, false);
  } catch (e) {
    await removeTree(work).catch(() => {});
    throw e;
  }
}

function fetched(dir: string, m: ImageManifest, cached: boolean): FetchedImage {
  return {
    url: m.url ?? "",
    sha256: m.diskSha256,
    dir,
    disk: join(dir, m.disk),
    format: m.format,
    manifest: m,
    cached,
  };
}

/** Stream `url` into `path`, hashing as it goes; returns the sha256 (hex) of what was written. */
async function download(url: string, path: string, opts: FetchImageOptions): Promise<string> {
  const idle = opts.idleTimeoutMs ?? 60_000;
  const ac = new AbortController();
  let timer = setTimeout(() => ac.abort(), idle);
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => ac.abort(), idle);
  };
  try {
    let res: Response;
    try {
      res = await fetch(url, { signal: ac.signal, redirect: "follow" });
    } catch (cause) {
      throw new UserError(
        `cannot download ${url}: ${ac.signal.aborted ? `no answer in ${idle / 1000} s` : errText(cause)}`,
        undefined,
        EXIT.failure,
        { cause },
      );
    }
    if (!res.ok || !res.body) {
      throw new UserError(`cannot download ${url}: HTTP ${res.status} ${res.statusText}`.trim());
    }
    const header = res.headers.get("content-length");
    const total = header !== null && /^\d+$/.test(header) ? Number(header) : null;
    const h = createHash("sha256");
    let received = 0;
    const body = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
    body.on("data", (chunk: Buffer) => {
      h.update(chunk);
      received += chunk.length;
      touch();
      opts.onBytes?.(received, total);
    });
    try {
      await pipeline(body, createWriteStream(path, { mode: 0o600 }));
    } catch (cause) {
      throw new UserError(
        `download of ${url} broke off after ${received} bytes: ${ac.signal.aborted ? `no data for ${idle / 1000} s` : errText(cause)}`,
        undefined,
        EXIT.failure,
        { cause },
      );
    }
    if (total !== null && received !== total) {
      throw new UserError(`download of ${url} ended after ${received} of ${total} bytes`);
    }
    return h.digest("hex");
  } finally {
    clearTimeout(timer);
  }
}

function errText(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e as Error).message;
}
