// A pure, deterministic cpio "newc" archive writer, the format the Linux kernel unpacks as initramfs.

/** One archive member. Paths are relative ("bin/busybox"); a leading "/" is stripped. */
export type CpioEntry =
  | { type: "dir"; path: string; mode?: number }
  | { type: "file"; path: string; data: Uint8Array; mode?: number }
  | { type: "symlink"; path: string; target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const MAGIC = "070701";
const TRAILER = "TRAILER!!!";

/**
 * Serialize entries, in the order given, as a newc archive ending with TRAILER!!!.
 * Deterministic: mtime 0, uid/gid 0, inode numbers 1, 2, 3... in entry order.
 */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const chunks: Buffer[] = [];
  const seen = new Set<string>();
  let ino = 0;
  for (const e of entries) {
    const name = normalizePath(e.path);
    if (seen.has(name)) throw new Error(`cpio: duplicate path ${JSON.stringify(name)}`);
    seen.add(name);
    ino += 1;
    switch (e.type) {
      case "dir":
        chunks.push(member(ino, S_IFDIR | perm(e.mode ?? 0o755), 2, name, Buffer.alloc(0)));
        break;
      case "file":
        chunks.push(member(ino, S_IFREG | perm(e.mode ?? 0o644), 1, name, Buffer.from(e.data)));
        break;
      case "symlink":
        if (e.target === "" || e.target.includes("\0")) {
          throw new Error(`cpio: bad symlink target for ${JSON.stringify(name)}`);
        }
        chunks.push(member(ino, S_IFLNK | 0o777, 1, name, Buffer.from(e.target, "utf8")));
        break;
    }
  }
  chunks.push(member(0, 0, 1, TRAILER, Buffer.alloc(0)));
  return Buffer.concat(chunks);
}

/** The 110-byte newc header for one member (exported for tests). */
export function newcHeader(f: {
  ino: number;
  mode: number;
  nlink: number;
  fileSize: number;
  nameSize: number;
}): string {
  const fields = [
    f.ino,
    f.mode,
    0, // uid
    0, // gid
    f.nlink,
    0, // mtime
    f.fileSize,
    0, // devmajor
    0, // devminor
    0, // rdevmajor
    0, // rdevminor
    f.nameSize,
    0, // check (unused in newc)
  ];
  return MAGIC + fields.map(hex8).join("");
}

function member(ino: number, mode: number, nlink: number, name: string, data: Buffer): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, "utf8");
  const header = Buffer.from(
    newcHeader({ ino, mode, nlink, fileSize: data.length, nameSize: nameBytes.length }),
    "ascii",
  );
  const headPad = pad4(header.length + nameBytes.length);
  const dataPad = pad4(data.length);
  return Buffer.concat([header, nameBytes, Buffer.alloc(headPad), data, Buffer.alloc(dataPad)]);
}

function normalizePath(p: string): string {
  const name = p.replace(/^\/+/, "").replace(/\/+$/, "");
  if (name === "" || name.includes("\0")) throw new Error(`cpio: bad path ${JSON.stringify(p)}`);
  if (name.split("/").some((part) => part === "" || part === "." || part === "..")) {
    throw new Error(`cpio: path must be plain relative components: ${JSON.stringify(p)}`);
  }
  if (name === TRAILER) throw new Error("cpio: TRAILER!!! is reserved");
  return name;
}

function perm(mode: number): number {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new Error(`cpio: bad permission bits ${mode}`);
  }
  return mode;
}

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cpio: field out of range`);
  return n.toString(16).toUpperCase().padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}
