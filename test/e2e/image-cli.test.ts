// `qnet image build|list` through the real CLI: bad names, a missing mmdebstrap, a failed build leaving nothing, the cache.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { defaultImageCacheDir } from "../../src/image/cache.js";
import { CLI } from "../helpers/topology.js";
import { testImage } from "./helpers/image-vm.js";
import { addNetns, delNetns } from "./helpers/netns.js";

const NS = `qnt-imgcli-${process.pid}`;
const root = mkdtempSync(join(tmpdir(), "qnet-image-cli-"));
const sharedCache = process.env.QNET_TEST_IMAGE_CACHE ?? defaultImageCacheDir();

function qnet(args: string[], opts: { env?: NodeJS.ProcessEnv; netns?: string } = {}) {
  const argv = [process.execPath, CLI, ...args];
  const r = opts.netns
    ? spawnSync("ip", ["netns", "exec", opts.netns, ...argv], {
        encoding: "utf8",
        timeout: 600_000,
        env: opts.env ?? process.env,
      })
    : spawnSync(argv[0]!, argv.slice(1), {
        encoding: "utf8",
        timeout: 600_000,
        env: opts.env ?? process.env,
      });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  await testImage();
  addNetns(NS);
});
after(() => {
  delNetns(NS);
  rmSync(root, { recursive: true, force: true });
});

describe("qnet image", () => {
  it("build: an unknown name is a usage error listing the known ones", () => {
    const r = qnet(["image", "build", "debian-99", "--cache-dir", join(root, "c0")]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown image "debian-99"/);
    assert.match(r.stderr, /known images: debian-12, debian-13/);
  });

  it("build: without mmdebstrap, says which package to install and creates nothing", () => {
    const cache = join(root, "c1");
    // node itself is found by its absolute path; nothing else is on PATH.
    const r = qnet(["image", "build", "debian-12", "--cache-dir", cache], {
      env: { ...process.env, PATH: join(root, "empty-path") },
    });
    assert.equal(r.status, 4, r.stderr);
    assert.match(r.stderr, /mmdebstrap is not installed/);
    assert.match(r.stderr, /apt-get install --no-install-recommends mmdebstrap/);
    assert.ok(!existsSync(cache));
  });

  it("build: a build that fails half way leaves no half image, and sweeps abandoned work", () => {
    const cache = join(root, "c2");
    // Work left by a build that was killed (its PID is gone): swept by the next build.
    const dead = spawnSync("true").pid!;
    mkdirSync(join(cache, `.tmp-${dead}-00000000-abc`), { recursive: true });
    // A mirror nobody serves, on the loopback of an empty namespace: apt fails inside mmdebstrap.
    const r = qnet(
      [
        "image",
        "build",
        "debian-12",
        "--cache-dir",
        cache,
        "--mirror",
        "http://127.0.0.1:9/debian",
      ],
      { netns: NS },
    );
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /mmdebstrap/);
    assert.deepEqual(readdirSync(cache), []);
  });

  it("build: the cached image answers at once, with its kernel command line", () => {
    const r = qnet(["image", "build", "debian-12", "--cache-dir", sharedCache, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const img = JSON.parse(r.stdout);
    assert.equal(img.cached, true);
    assert.match(img.append, /root=\/dev\/vda/);
    assert.ok(existsSync(img.disk) && existsSync(img.kernel) && existsSync(img.initrd));
    assert.ok(img.nicModels.includes("virtio-net-pci"));
    assert.ok(!img.nicModels.includes("e1000"));
  });

  it("list: the cached image and the known ones not built; --json", () => {
    const r = qnet(["image", "list", "--cache-dir", sharedCache, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { name: string; status: string; kind: string | null }[];
    assert.ok(
      list.some((e) => e.name === "debian-12" && e.status === "cached" && e.kind === "built"),
    );
    const empty = JSON.parse(
      qnet(["image", "list", "--cache-dir", join(root, "none"), "--json"]).stdout,
    );
    assert.deepEqual(
      empty.map((e: { name: string; status: string }) => `${e.name} ${e.status}`),
      ["debian-12 not built", "debian-13 not built"],
    );
    const text = qnet(["image", "list", "--cache-dir", sharedCache]).stdout;
    assert.match(text, /^NAME\s+STATUS\s+SIZE/);
  });

  it("--help has examples", () => {
    for (const sub of ["build", "list"]) {
      const r = qnet(["image", sub, "--help"]);
      assert.equal(r.status, 0);
      assert.match(r.stdout, /Examples:\n {2}\$ (sudo )?qnet image/);
    }
  });
});
