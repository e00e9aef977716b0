// The programs qnet runs: found without spawning, named with their Debian package when missing, every one
// of them in packages/debian.json, and that list the one .ci/run and ./setup install.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { PROGRAMS } from "../../src/engine/executors.js";
import { EXIT, UserError } from "../../src/errors.js";
import { emptyObservation } from "../../src/facts/types.js";
import {
  findProgram,
  missingProgramsError,
  packageList,
  packageOf,
  programPath,
} from "../../src/host/programs.js";
import { missingProgram } from "../../src/host/runner.js";
import { planLab } from "../../src/kinds/index.js";
import type { Action, KindName } from "../../src/kinds/types.js";
import { REPO_ROOT } from "../helpers/golden.js";
import { env, exampleLab } from "./host-fixtures.js";

const dir = mkdtempSync(join(tmpdir(), "qnet-programs-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("finding programs", () => {
  it("finds one on the path given, only if it is an executable file", () => {
    writeFileSync(join(dir, "tool"), "#!/bin/sh\n", { mode: 0o755 });
    writeFileSync(join(dir, "data"), "x", { mode: 0o644 });
    assert.equal(findProgram("tool", dir), join(dir, "tool"));
    assert.equal(findProgram("data", dir), null);
    assert.equal(findProgram("no-such-tool", dir), null);
    chmodSync(join(dir, "tool"), 0o644);
    assert.equal(findProgram("tool", dir), null);
    assert.equal(findProgram(join(dir, "nope")), null);
  });

  it("searches the sbin directories even when PATH lacks them (a user's PATH on Debian)", () => {
    const p = programPath("/usr/local/bin:/usr/bin").split(":");
    for (const d of ["/usr/local/bin", "/usr/bin", "/usr/sbin", "/sbin"]) assert.ok(p.includes(d));
    assert.equal(p.indexOf("/usr/local/bin"), 0, "the caller's order first");
  });
});

describe("a program that cannot run", () => {
  it("is recognised from spawn's ENOENT and from ip netns exec's message", () => {
    assert.equal(missingProgram(["dnsmasq", "-C", "x"], "ENOENT", ""), "dnsmasq");
    assert.equal(
      missingProgram(
        ["ip", "netns", "exec", "lab", "nft", "-f", "-"],
        undefined,
        'exec of "nft" failed: No such file or directory\n',
      ),
      "nft",
    );
    assert.equal(
      missingProgram(["ip", "link", "add"], undefined, "RTNETLINK answers: File exists"),
      null,
    );
  });

  it("is named with its package, and one apt-get line installs them all (exit 4)", () => {
    const e = missingProgramsError(["dnsmasq", "nft", "tc", "ip"]);
    assert.ok(e instanceof UserError);
    assert.equal(e.exitCode, EXIT.environment);
    assert.match(
      e.message,
      /dnsmasq \(Debian package dnsmasq-base\), nft \(Debian package nftables\)/,
    );
    assert.equal(
      e.hint,
      "install them: apt-get install --no-install-recommends dnsmasq-base nftables iproute2 (or: qnet doctor --fix)",
    );
    const unknown = missingProgramsError(["frobnicate"], "VM vm0");
    assert.match(unknown.message, /^VM vm0 needs a program this host does not have: frobnicate$/);
  });
});

describe("packages/debian.json", () => {
  it("holds every program the executors run for the examples' plans", () => {
    const empty = emptyObservation(null, true);
    const seen = new Set<string>();
    for (const name of [
      "private-lan.yaml",
      "services.yaml",
      "user-forward.yaml",
      "lan-bridge.yaml",
    ]) {
      const lab = exampleLab(name);
      const plan = planLab({ ...env(lab), vms: true }, empty);
      const byKind = new Map<KindName, Action[]>();
      for (const a of plan.actions) byKind.set(a.kind, [...(byKind.get(a.kind) ?? []), a]);
      for (const [kind, actions] of byKind) for (const p of PROGRAMS[kind](actions)) seen.add(p);
    }
    for (const p of ["ip", "dnsmasq", "nft", "qemu-system-x86_64", "busybox", "qemu-ga"])
      assert.ok(seen.has(p), `${p} among ${[...seen].join(" ")}`);
    for (const p of seen) assert.ok(packageOf(p), `${p} has a package in packages/debian.json`);
  });

  it("list.mjs prints it for apt-get; .ci/run and ./setup install from it", () => {
    const list = packageList();
    const run = (args: string[]) =>
      execFileSync(process.execPath, [join(REPO_ROOT, "packages", "list.mjs"), ...args], {
        encoding: "utf8",
      }).trim();
    const names = run([]).split(" ");
    assert.equal(names.length, list.runtime.length);
    assert.ok(names.includes("qemu-system-x86") && names.includes("dnsmasq-base"));
    assert.deepEqual(run(["--test"]).split(" ").slice(names.length), list.test);
    assert.match(
      readFileSync(join(REPO_ROOT, ".ci", "run"), "utf8"),
      /node packages\/list\.mjs --test/,
    );
    assert.match(readFileSync(join(REPO_ROOT, "setup"), "utf8"), /node packages\/list\.mjs\)/);
  });
});
