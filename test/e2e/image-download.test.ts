// Image downloads against a real HTTP server inside a test namespace: verified once and cached, or refused and deleted.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { sha256File } from "../../src/image/build.js";
import { downloadKey } from "../../src/image/download.js";
import { resolveImage } from "../../src/image/resolve.js";
import { REPO_ROOT } from "../helpers/golden.js";
import { testImage } from "./helpers/image-vm.js";
import { addNetns, delNetns } from "./helpers/netns.js";

const NS = `qnt-dl-${process.pid}`;
const root = mkdtempSync(join(tmpdir(), "qnet-image-dl-"));
const served = join(root, "served");
const PORT = 8080;
const BASE = `http://127.0.0.1:${PORT}`;
const HELPERS = join(REPO_ROOT, "dist", "test", "e2e", "helpers");
let server: ChildProcess | undefined;
const sha = new Map<string, string>();

interface Outcome {
  ok: boolean;
  message?: string;
  hint?: string;
  disk?: string;
  format?: string;
  sha256?: string;
  cached?: boolean;
  progressLines?: number;
  lastBytes?: number;
}

/** fetchImage, run inside the namespace (where the server is) in a child process. */
function fetchInNs(url: string, sha256: string | undefined, cacheDir: string): Outcome {
  const r = spawnSync(
    "ip",
    [
      "netns",
      "exec",
      NS,
      process.execPath,
      join(HELPERS, "fetch-child.js"),
      url,
      sha256 ?? "-",
      cacheDir,
    ],
    { encoding: "utf8", timeout: 300_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Outcome;
}

/** What a cache directory holds besides published entries: must be nothing after a failure. */
const leftovers = (cacheDir: string) =>
  existsSync(cacheDir) ? readdirSync(cacheDir).filter((n) => n.startsWith(".")) : [];

before(async () => {
  mkdirSync(served);
  const img = await testImage();
  // The built Debian image, as a file on the server; small images made with qemu-img for the rest.
  execFileSync("cp", [img.disk, join(served, "debian-12.qcow2")]);
  sha.set("debian-12.qcow2", img.sha256);
  execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", join(served, "small.qcow2"), "16M"]);
  execFileSync("qemu-img", ["create", "-q", "-f", "vmdk", join(served, "disk.vmdk"), "16M"]);
  execFileSync("qemu-img", [
    "create",
    "-q",
    "-f",
    "qcow2",
    "-F",
    "raw",
    "-b",
    "/etc/hostname",
    join(served, "backed.qcow2"),
  ]);
  writeFileSync(join(served, "disk.raw"), Buffer.alloc(1 << 20, 7));
  for (const f of ["small.qcow2", "disk.vmdk", "backed.qcow2", "disk.raw"]) {
    sha.set(f, await sha256File(join(served, f)));
  }
  addNetns(NS);
  server = spawn(
    "ip",
    ["netns", "exec", NS, process.execPath, join(HELPERS, "http-serve.js"), served, String(PORT)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve, reject) => {
    server!.stdout!.once("data", () => resolve());
    server!.once("exit", (c) => reject(new Error(`server exited ${c}`)));
  });
});

after(() => {
  if (server?.pid !== undefined && server.exitCode === null) process.kill(server.pid, "SIGKILL");
  delNetns(NS);
  rmSync(root, { recursive: true, force: true });
});

describe("image download (HTTP server in a test namespace)", () => {
  it("downloads the built Debian image, verifies it, caches it; the next use needs no server", async () => {
    const cache = join(root, "cache-ok");
    const url = `${BASE}/debian-12.qcow2`;
    const r = fetchInNs(url, sha.get("debian-12.qcow2"), cache);
    assert.ok(r.ok, r.message);
    assert.equal(r.format, "qcow2");
    assert.equal(r.cached, false);
    assert.equal(r.disk, join(cache, downloadKey(sha.get("debian-12.qcow2")!), "disk.qcow2"));
    assert.equal(await sha256File(r.disk!), sha.get("debian-12.qcow2"));
    assert.ok((r.lastBytes ?? 0) > 100 * 2 ** 20, "progress saw the bytes");
    // From the cache: in this process, outside the namespace, where the server cannot be reached.
    const again = await resolveImage(
      { kind: "url", url, sha256: sha.get("debian-12.qcow2")! },
      {
        cacheDir: cache,
      },
    );
    assert.equal(again.cached, true);
    assert.equal(again.disk, r.disk);
    assert.equal(again.boot, null);
    assert.deepEqual(leftovers(cache), []);
  });

  it("accepts a raw image", () => {
    const r = fetchInNs(`${BASE}/disk.raw`, sha.get("disk.raw"), join(root, "cache-raw"));
    assert.ok(r.ok, r.message);
    assert.equal(r.format, "raw");
  });

  it("refuses a checksum mismatch and keeps nothing", () => {
    const cache = join(root, "cache-mismatch");
    const wrong = "0".repeat(64);
    const r = fetchInNs(`${BASE}/small.qcow2`, wrong, cache);
    assert.equal(r.ok, false);
    assert.match(
      r.message!,
      /checksum mismatch .*expected sha256 0{64}, the download has [0-9a-f]{64}/,
    );
    assert.ok(!existsSync(join(cache, downloadKey(wrong))));
    assert.deepEqual(leftovers(cache), []);
  });

  it("refuses an image that is not qcow2 or raw (vmdk), and a qcow2 naming a backing file", () => {
    const cache = join(root, "cache-format");
    const vmdk = fetchInNs(`${BASE}/disk.vmdk`, sha.get("disk.vmdk"), cache);
    assert.equal(vmdk.ok, false);
    assert.match(vmdk.message!, /is refused: it is a vmdk image; qnet runs qcow2 or raw images/);
    const backed = fetchInNs(`${BASE}/backed.qcow2`, sha.get("backed.qcow2"), cache);
    assert.equal(backed.ok, false);
    assert.match(backed.message!, /names a backing file \(\/etc\/hostname\)/);
    assert.deepEqual(readdirSync(cache), []);
  });

  it("reports an HTTP error and a download cut short, keeping nothing", () => {
    const cache = join(root, "cache-http");
    const missing = fetchInNs(`${BASE}/missing`, "1".repeat(64), cache);
    assert.equal(missing.ok, false);
    assert.match(missing.message!, /HTTP 404/);
    const cut = fetchInNs(`${BASE}/truncated`, "1".repeat(64), cache);
    assert.equal(cut.ok, false);
    assert.match(cut.message!, /broke off after \d+ bytes|ended after \d+ of 1048576 bytes/);
    assert.deepEqual(readdirSync(cache), []);
  });

  it("refuses a URL without sha256 before any network use", () => {
    const r = fetchInNs(`${BASE}/small.qcow2`, undefined, join(root, "cache-nosha"));
    assert.equal(r.ok, false);
    assert.match(r.message!, /has no sha256: qnet verifies every download/);
    assert.match(r.hint!, /sha256sum FILE/);
    assert.ok(!existsSync(join(root, "cache-nosha")));
  });
});
