// writeFileAtomic: a concurrent reader never sees a partial file; no temp file is left; mode is kept.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { writeFileAtomic } from "../../src/host/files.js";
import { REPO_ROOT } from "../helpers/golden.js";

const dir = mkdtempSync(join(tmpdir(), "qnet-atomic-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const SIZE = 4 * 1024 * 1024;

test("a reader in another process only ever sees a whole old or whole new content", async () => {
  const path = join(dir, "big");
  writeFileAtomic(path, "a".repeat(SIZE));
  const files = join(REPO_ROOT, "dist", "src", "host", "files.js");
  // The writer alternates two 4 MB contents 40 times while this process reads as fast as it can.
  const script = `import(${JSON.stringify(files)}).then(({writeFileAtomic})=>{for(let i=0;i<40;i++)writeFileAtomic(${JSON.stringify(path)},(i%2?"a":"b").repeat(${SIZE}));})`;
  const writer = spawn(process.execPath, ["-e", script], { stdio: "inherit" });
  let done = false;
  const exited = new Promise<number | null>((res) =>
    writer.on("exit", (c) => {
      done = true;
      res(c);
    }),
  );
  let reads = 0;
  const seen = new Set<string>();
  while (!done) {
    const t = readFileSync(path, "latin1");
    assert.equal(t.length, SIZE, `torn read: ${t.length} bytes`);
    assert.ok(t[0] === t[SIZE - 1] && (t[0] === "a" || t[0] === "b"), "mixed content");
    seen.add(t[0]!);
    reads++;
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(await exited, 0);
  assert.ok(reads > 5, `only ${reads} reads`);
  assert.ok(seen.size === 2, "the reader never saw the file change");
  assert.deepEqual(readdirSync(dir), ["big"], "a temp file was left behind");
});

test("the new file has the requested mode, and a failed write leaves the old file intact", () => {
  const path = join(dir, "conf");
  writeFileSync(path, "old\n");
  writeFileAtomic(path, "new\n", 0o640);
  assert.equal(statSync(path).mode & 0o777, 0o640);
  assert.equal(readFileSync(path, "utf8"), "new\n");
  writeFileAtomic(path, "x\n");
  assert.equal(statSync(path).mode & 0o777, 0o600, "default mode is 0600");
  assert.throws(() => writeFileAtomic(join(dir, "missing", "f"), "y"));
  assert.equal(readFileSync(path, "utf8"), "x\n");
});
