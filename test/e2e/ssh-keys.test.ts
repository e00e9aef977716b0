// SSH key material made with the real ssh-keygen and dropbearconvert: modes, reuse, user-given keys.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { dropbearHostKey, labSshKey, sshDir, vmHostKey } from "../../src/ssh/keys.js";

const dir = mkdtempSync(join(tmpdir(), "qnet-ssh-keys-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const mode = (p: string) => statSync(p).mode & 0o777;
const blob = (pub: string) => pub.trim().split(/\s+/).slice(0, 2).join(" ");

describe("lab key pair", () => {
  it("is generated once (ed25519, 0600 in a 0700 directory) and reused", async () => {
    const a = await labSshKey(dir, "lab");
    assert.equal(a.generated, true);
    assert.match(a.publicKey, /^ssh-ed25519 \S+ qnet-lab-lab$/);
    assert.equal(mode(a.identityFile!), 0o600);
    assert.equal(mode(sshDir(dir)), 0o700);
    const b = await labSshKey(dir, "lab");
    assert.equal(b.generated, false);
    assert.equal(b.publicKey, a.publicKey);
    // The public key is the private key's: ssh-keygen derives the same one.
    const derived = execFileSync("ssh-keygen", ["-y", "-f", a.identityFile!], { encoding: "utf8" });
    assert.equal(blob(derived), blob(a.publicKey));
  });

  it("or the user's: a public key line (no IdentityFile) or a private key path", async () => {
    const line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice@laptop";
    assert.deepEqual(await labSshKey(dir, "lab", line), {
      publicKey: line,
      identityFile: null,
      generated: false,
    });
    const own = join(dir, "alice_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", own]);
    const k = await labSshKey(dir, "lab", own);
    assert.equal(k.identityFile, own);
    assert.match(k.publicKey, / alice$/);
    rmSync(`${own}.pub`);
    const derived = await labSshKey(dir, "lab", own);
    assert.equal(blob(derived.publicKey), blob(k.publicKey));
    await assert.rejects(labSshKey(dir, "lab", join(dir, "nope")), /no such file/);
  });
});

describe("VM host keys", () => {
  it("one per VM, reused, 0600; dropbear's conversion holds the same key", async () => {
    const h = await vmHostKey(dir, "vm0");
    assert.equal(mode(h.privateFile), 0o600);
    assert.match(h.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
    assert.equal((await vmHostKey(dir, "vm0")).publicKey, h.publicKey);
    assert.notEqual((await vmHostKey(dir, "vm1")).publicKey, h.publicKey);
    const db = await dropbearHostKey(h);
    assert.equal(mode(db), 0o600);
    const out = execFileSync("dropbearkey", ["-y", "-f", db], { encoding: "utf8" });
    const pub = out.split("\n").find((l) => l.startsWith("ssh-ed25519 "))!;
    assert.equal(blob(pub), blob(h.publicKey));
  });
});
