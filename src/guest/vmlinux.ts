// Unpacks the ELF vmlinux out of a bzImage so QEMU can boot it directly (PVH entry): no in-guest decompression.

import { gunzipSync } from "node:zlib";
import { execa } from "execa";

/**
 * Why: under TCG (no usable KVM) the guest spends seconds decompressing an xz bzImage. QEMU boots an
 * uncompressed vmlinux through its PVH entry point, skipping the decompressor and the real-mode setup.
 * Returns null when the image is not a bzImage, uses a compression we do not handle, or the vmlinux
 * lacks the PVH note (QEMU could not boot it): the caller then uses the bzImage as is.
 */
export async function extractPvhVmlinux(bzImage: Uint8Array): Promise<Buffer | null> {
  const b = Buffer.from(bzImage.buffer, bzImage.byteOffset, bzImage.byteLength);
  if (b.length < 0x260 || b.toString("latin1", 0x202, 0x206) !== "HdrS") return null;
  if (b.readUInt16LE(0x206) < 0x208) return null; // payload fields need boot protocol 2.08
  const setupSects = b[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + b.readUInt32LE(0x248);
  const payload = b.subarray(start, start + b.readUInt32LE(0x24c));
  let elf: Buffer | null = null;
  try {
    if (payload[0] === 0x1f && payload[1] === 0x8b) {
      elf = gunzipSync(payload);
    } else if (payload.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
      elf = await pipe(["xz", "-dc", "--single-stream"], payload);
    } else if (payload.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) {
      // The kernel appends the uncompressed size (4 bytes) after the zstd frame.
      elf = await pipe(["zstd", "-dc"], payload.subarray(0, payload.length - 4));
    }
  } catch {
    return null;
  }
  if (elf === null || !hasPvhNote(elf)) return null;
  return elf;
}

async function pipe(argv: [string, ...string[]], input: Buffer): Promise<Buffer> {
  const [file, ...args] = argv;
  const r = await execa(file, args, {
    input,
    encoding: "buffer",
    stripFinalNewline: false,
    maxBuffer: 1024 * 1024 * 1024,
  });
  return Buffer.from(r.stdout);
}

/** True when a 64-bit little-endian ELF has a Xen PHYS32_ENTRY note (type 18), QEMU's PVH entry. */
export function hasPvhNote(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) {
    return false;
  }
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length || elf.readUInt32LE(ph) !== 4) continue; // PT_NOTE
    const off = Number(elf.readBigUInt64LE(ph + 8));
    const end = Math.min(elf.length, off + Number(elf.readBigUInt64LE(ph + 32)));
    let p = off;
    while (p + 12 <= end) {
      const namesz = elf.readUInt32LE(p);
      const descsz = elf.readUInt32LE(p + 4);
      const type = elf.readUInt32LE(p + 8);
      const name = elf.toString("latin1", p + 12, p + 12 + Math.max(0, namesz - 1));
      if (name === "Xen" && type === 18) return true;
      p += 12 + align4(namesz) + align4(descsz);
    }
  }
  return false;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
