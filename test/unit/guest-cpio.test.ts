// Tests for the cpio newc writer: header bytes, padding, and extraction by GNU cpio.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { execa } from "execa";
import { type CpioEntry, newcHeader, writeCpio } from "../../src/guest/cpio.js";

const entries: CpioEntry[] = [
  { type: "dir", path: "bin" },
  { type: "dir", path: "etc", mode: 0o700 },
  { type: "file", path: "/bin/hello", data: Buffer.from("#!/bin/sh\necho hi\n"), mode: 0o755 },
  { type: "file", path: "etc/empty", data: new Uint8Array(0) },
  { type: "file", path: "etc/odd", data: Buffer.from("abcde") },
  { type: "symlink", path: "bin/sh", target: "hello" },
];

/** Parse a newc archive back into (name, mode, ino, nlink, data) records; checks alignment. */
function parse(buf: Buffer) {
  const out: Array<{
    name: string;
    ino: number;
    mode: number;
    nlink: number;
    uid: number;
    gid: number;
    mtime: number;
    data: Buffer;
  }> = [];
  let off = 0;
  for (;;) {
    assert.equal(off % 4, 0, "each header starts 4-aligned");
    assert.equal(buf.toString("ascii", off, off + 6), "070701");
    const field = (i: number) =>
      Number.parseInt(buf.toString("ascii", off + 6 + i * 8, off + 14 + i * 8), 16);
    const nameSize = field(11);
    const fileSize = field(6);
    const name = buf.toString("utf8", off + 110, off + 110 + nameSize - 1);
    assert.equal(buf[off + 110 + nameSize - 1], 0, "name is NUL-terminated");
    let p = off + 110 + nameSize;
    p += (4 - (p % 4)) % 4;
    const data = buf.subarray(p, p + fileSize);
    out.push({
      name,
      ino: field(0),
      mode: field(1),
      uid: field(2),
      gid: field(3),
      nlink: field(4),
      mtime: field(5),
      data,
    });
    p += fileSize;
    p += (4 - (p % 4)) % 4;
    off = p;
    if (name === "TRAILER!!!") break;
  }
  assert.equal(off, buf.length, "nothing after the trailer");
  return out;
}

describe("cpio newc writer", () => {
  const tmp = mkdtempSync(join(tmpdir(), "qnt-guest-cpio-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it("writes the header fields: magic, sequential inodes, mode, zero uid/gid/mtime", () => {
    const recs = parse(writeCpio(entries));
    assert.deepEqual(
      recs.map((r) => r.name),
      ["bin", "etc", "bin/hello", "etc/empty", "etc/odd", "bin/sh", "TRAILER!!!"],
    );
    assert.deepEqual(
      recs.map((r) => r.ino),
      [1, 2, 3, 4, 5, 6, 0],
    );
    assert.deepEqual(
      recs.map((r) => r.mode.toString(8)),
      ["40755", "40700", "100755", "100644", "100644", "120777", "0"],
    );
    assert.deepEqual(
      recs.map((r) => r.nlink),
      [2, 2, 1, 1, 1, 1, 1],
    );
    for (const r of recs) assert.deepEqual([r.uid, r.gid, r.mtime], [0, 0, 0]);
    assert.equal(recs[2]!.data.toString(), "#!/bin/sh\necho hi\n");
    assert.equal(recs[4]!.data.toString(), "abcde");
    assert.equal(recs[5]!.data.toString(), "hello", "symlink data is its target");
  });

  it("renders a header as 6 + 13*8 uppercase hex characters", () => {
    const h = newcHeader({ ino: 1, mode: 0o100644, nlink: 1, fileSize: 255, nameSize: 4 });
    assert.equal(h.length, 110);
    assert.equal(
      h,
      "070701" +
        "00000001" +
        "000081A4" +
        "00000000" +
        "00000000" +
        "00000001" +
        "00000000" +
        "000000FF" +
        "00000000".repeat(4) +
        "00000004" +
        "00000000",
    );
  });

  it("is deterministic", () => {
    assert.ok(writeCpio(entries).equals(writeCpio(entries)));
  });

  it("rejects duplicate, empty and dot-dot paths", () => {
    assert.throws(
      () =>
        writeCpio([
          { type: "dir", path: "a" },
          { type: "dir", path: "a/" },
        ]),
      /duplicate/,
    );
    assert.throws(() => writeCpio([{ type: "dir", path: "/" }]), /bad path/);
    assert.throws(() => writeCpio([{ type: "dir", path: "a/../b" }]), /plain relative/);
    assert.throws(() => writeCpio([{ type: "symlink", path: "x", target: "" }]), /symlink/);
  });

  it("lists in order with cpio -t and extracts with cpio -i", async () => {
    const buf = writeCpio(entries);
    const list = await execa("cpio", ["-t", "--quiet"], { input: buf });
    assert.deepEqual(list.stdout.split("\n"), [
      "bin",
      "etc",
      "bin/hello",
      "etc/empty",
      "etc/odd",
      "bin/sh",
    ]);
    const out = join(tmp, "x");
    await execa("mkdir", ["-p", out]);
    await execa(
      "cpio",
      ["-i", "--quiet", "--make-directories", "--no-absolute-filenames", "-D", out],
      {
        input: buf,
      },
    );
    assert.equal(readFileSync(join(out, "bin/hello"), "utf8"), "#!/bin/sh\necho hi\n");
    assert.equal(statSync(join(out, "bin/hello")).mode & 0o7777, 0o755);
    assert.equal(statSync(join(out, "etc")).mode & 0o7777, 0o700);
    assert.equal(readFileSync(join(out, "etc/empty")).length, 0);
    assert.equal(readFileSync(join(out, "etc/odd"), "utf8"), "abcde");
    assert.equal(readlinkSync(join(out, "bin/sh")), "hello");
  });
});
