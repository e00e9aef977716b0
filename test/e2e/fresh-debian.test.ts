// The README's Quick start, run as written on a fresh Debian 12 (mmdebstrap minbase, plus sudo, plus this
// machine's Node.js) in a chroot: first qnet with none of its programs installed (each missing one named
// with its package), then `sudo ./setup` answering apt-get's one question, then the lab itself.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO_ROOT } from "../helpers/golden.js";

const root = mkdtempSync(join(tmpdir(), "qnet-fresh-debian-"));
const fs = join(root, "rootfs");
const out = join(fs, "root", "out");

/** The shell code blocks of the README's Quick start, command by command (comments kept: sh reads them). */
function quickStart(): string[] {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
  const section = readme.split("\n## Quick start\n")[1]!.split("\n## ")[0]!;
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1]!.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#")),
  );
}

const shellQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

interface Step {
  rc: number;
  out: string;
  err: string;
}
const step = (name: string): Step => ({
  rc: Number(readFileSync(join(out, `${name}.rc`), "utf8")),
  out: readFileSync(join(out, `${name}.out`), "utf8"),
  err: readFileSync(join(out, `${name}.err`), "utf8"),
});

/** Copy this machine's Node.js (the binary and npm) into the root file system, as a user installs it. */
function installNode(): void {
  mkdirSync(join(fs, "usr/local/bin"), { recursive: true });
  cpSync(process.execPath, join(fs, "usr/local/bin/node"));
  const npmDir = join(dirname(dirname(readlinkSync("/proc/self/exe"))), "lib/node_modules/npm");
  cpSync(npmDir, join(fs, "usr/local/lib/node_modules/npm"), { recursive: true });
  symlinkSync("../lib/node_modules/npm/bin/npm-cli.js", join(fs, "usr/local/bin/npm"));
  symlinkSync("../lib/node_modules/npm/bin/npx-cli.js", join(fs, "usr/local/bin/npx"));
}

/** The checkout as git sees it (tracked and new files, nothing ignored), without node_modules or dist. */
function copyCheckout(dest: string): void {
  const files = execFileSync("git", ["ls-files", "-co", "--exclude-standard", "-z"], {
    cwd: REPO_ROOT,
    encoding: "utf8",
  })
    .split("\0")
    .filter((f) => f && existsSync(join(REPO_ROOT, f)));
  for (const f of files) {
    mkdirSync(dirname(join(dest, f)), { recursive: true });
    cpSync(join(REPO_ROOT, f), join(dest, f));
  }
}

/** Processes whose root directory is the test's root file system (QEMU, dnsmasq left by a failure). */
function processesInside(): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readlinkSync(`/proc/${p}/root`) === fs;
      } catch {
        return false;
      }
    })
    .map(Number);
}

before(() => {
  // A fresh Debian 12: the minimal base system, and sudo (the README's commands use it).
  execFileSync(
    "mmdebstrap",
    [
      "--variant=minbase",
      "--include=sudo",
      "--quiet",
      "bookworm",
      fs,
      "http://deb.debian.org/debian",
    ],
    { stdio: ["ignore", "ignore", "inherit"], timeout: 900_000 },
  );
  installNode();
  copyCheckout(join(fs, "root", "qnet"));
  cpSync("/etc/resolv.conf", join(fs, "etc", "resolv.conf"), { dereference: true });
  // A machine knows its own name (sudo looks it up).
  writeFileSync(join(fs, "etc", "hosts"), `127.0.0.1 localhost\n127.0.1.1 ${hostname()}\n`);
  // The network's certificate authorities, as this machine trusts them (its egress may re-sign TLS): part
  // of the place, not of qnet. npm reaches its registry with them (NODE_EXTRA_CA_CERTS, when set, names it).
  const bundle = "/etc/ssl/certs/ca-certificates.crt";
  if (existsSync(bundle)) {
    mkdirSync(join(fs, "etc/ssl/certs"), { recursive: true });
    cpSync(bundle, join(fs, bundle.slice(1)), { dereference: true });
  }
  // And where update-ca-certificates finds them again, should a package install ca-certificates.
  const local = "/usr/local/share/ca-certificates";
  if (existsSync(local)) cpSync(local, join(fs, local.slice(1)), { recursive: true });
  // The usual chroot convention: packages do not start their services in it.
  writeFileSync(join(fs, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  mkdirSync(out);
  const readme = quickStart()
    .map((line, i) => `step readme-${i} sh -c ${shellQuote(line)}`)
    .join("\n");
  // One script, so that every step runs in the same mount namespace (the lab's /run/netns lives there).
  writeFileSync(
    join(fs, "root", "steps.sh"),
    `#!/bin/bash
set +e
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
cd /root/qnet
step() { name=$1; shift; "$@" > /root/out/$name.out 2> /root/out/$name.err < /root/out/answers; echo $? > /root/out/$name.rc; }
printf 'Y\\n' > /root/out/answers
# qnet without the programs it runs: built by npm ci only.
step npm-ci npm ci --no-audit --no-fund
step up-bare node dist/src/cli/main.js up examples/private-lan.yaml --netns bare
step doctor-bare node dist/src/cli/main.js doctor --json
rm -rf node_modules dist
# The README's Quick start, as written.
${readme}
step leftover-netns ip netns list
`,
    { mode: 0o755 },
  );
  const r = spawnSync(
    "unshare",
    [
      "--mount",
      "--propagation",
      "private",
      "--fork",
      "--",
      "/bin/bash",
      "-ec",
      // The root a bind mount of itself: \`ip -n\` remounts / as a slave, which needs / to be a mount point.
      `mount --bind ${fs} ${fs}
       mount -t proc proc ${fs}/proc
       mount -t sysfs sys ${fs}/sys
       mount --rbind /dev ${fs}/dev
       mount -t tmpfs tmpfs ${fs}/run
       exec chroot ${fs} /root/steps.sh`,
    ],
    { encoding: "utf8", timeout: 2_400_000 },
  );
  assert.equal(r.status, 0, `the steps did not run: ${r.stderr}`);
});

after(() => {
  for (const pid of processesInside()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  rmSync(root, { recursive: true, force: true });
});

describe("a fresh Debian 12 (minbase, sudo, Node.js), in a chroot", () => {
  it("npm ci installs and builds qnet", () => {
    const s = step("npm-ci");
    assert.equal(s.rc, 0, s.err);
  });

  it("qnet up on a host without its programs names each missing one and its package, exit 4, nothing made", () => {
    const s = step("up-bare");
    assert.equal(s.rc, 4, s.err);
    assert.match(s.err, /ip \(Debian package iproute2\)/);
    assert.match(s.err, /apt-get install --no-install-recommends iproute2/);
    assert.doesNotMatch(s.err, /signal/);
  });

  it("qnet doctor names every missing package with its fix", () => {
    const s = step("doctor-bare");
    const report = JSON.parse(s.out) as { checks: { id: string; status: string; fix?: string }[] };
    const failed = report.checks.filter((c) => c.id.startsWith("programs.") && c.status === "fail");
    const names = failed.map((c) => c.id.slice("programs.".length));
    for (const pkg of ["qemu-system-x86", "iproute2", "dnsmasq-base", "nftables", "busybox-static"])
      assert.ok(names.includes(pkg), `${pkg} in ${names.join(" ")}`);
    assert.ok(failed.every((c) => /^apt-get install --no-install-recommends /.test(c.fix ?? "")));
  });

  it("the README's Quick start works as written: setup, up, exec (the VMs ping), down", () => {
    const commands = quickStart();
    assert.deepEqual(
      commands.map((c) => c.replace(/#.*/, "").trim().split(/\s+/).slice(0, 3).join(" ")),
      ["sudo ./setup", "sudo qnet up", "sudo qnet exec", "sudo qnet down"],
    );
    commands.forEach((cmd, i) => {
      const s = step(`readme-${i}`);
      assert.equal(s.rc, 0, `${cmd}\n${s.out.slice(-2000)}\n${s.err.slice(-3000)}`);
    });
    assert.match(step("readme-1").err, /VM vm1: ready/);
    assert.match(step("readme-2").out, /1 packets transmitted, 1 (packets )?received/);
  });

  it("down leaves no namespace and no process behind", () => {
    assert.equal(step("leftover-netns").out.trim(), "");
    assert.deepEqual(processesInside(), []);
  });
});
