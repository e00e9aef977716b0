// SSH key material of a lab, made by ssh-keygen: the lab's login key pair and one host key per VM.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { execa } from "execa";
import { CommandError, EXIT, UserError } from "../errors.js";
import { NAME_RE } from "../model/names.js";

/** The key a lab's VMs authorize, and the private key ssh uses (null: the user's agent or default keys). */
export interface LabSshKey {
  /** One OpenSSH public key line: "ssh-ed25519 AAAA... comment". */
  publicKey: string;
  /** Absolute path of the private key, or null when only a public key was given. */
  identityFile: string | null;
  /** True when this call generated the key pair. */
  generated: boolean;
}

/** A VM's SSH host key: the private key is delivered to the guest, the public one is pinned. */
export interface HostKey {
  /** OpenSSH private key file (0600). */
  privateFile: string;
  /** Its content, for cloud-init's `ssh_keys`. */
  privateKey: string;
  /** "ssh-ed25519 AAAA... comment". */
  publicKey: string;
}

/** The directory inside `dir` (a lab's state directory) that holds its keys; 0700. */
export function sshDir(dir: string): string {
  return join(dir, "ssh");
}

const PUBLIC_KEY_RE =
  /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( [^\n\r]*)?$/;

/** True for one OpenSSH public key line (what `sshKey:` holds when it is not a path). */
export function isPublicKeyLine(s: string): boolean {
  return PUBLIC_KEY_RE.test(s.trim());
}

/**
 * The lab's login key. `given` is the user's `sshKey`: an OpenSSH public key line (their agent or
 * default keys log in; no IdentityFile), or the path of a private key (its `.pub` beside it, or derived
 * with `ssh-keygen -y`). Without it, an ed25519 key pair is generated once in `dir`/ssh (0600) and reused.
 */
export async function labSshKey(dir: string, label: string, given?: string): Promise<LabSshKey> {
  if (given !== undefined && isPublicKeyLine(given)) {
    return { publicKey: given.trim(), identityFile: null, generated: false };
  }
  if (given !== undefined) {
    const path = resolve(given);
    if (!existsSync(path)) {
      throw new UserError(
        `sshKey ${given}: no such file`,
        "give a private key file (with its .pub beside it) or one public key line",
      );
    }
    const pub = existsSync(`${path}.pub`)
      ? readFileSync(`${path}.pub`, "utf8").trim()
      : await keygen(["-y", "-f", path]);
    if (!isPublicKeyLine(pub)) {
      throw new UserError(`sshKey ${given}: ${path}.pub is not an OpenSSH public key`);
    }
    return { publicKey: pub, identityFile: path, generated: false };
  }
  const keys = privateDir(dir);
  const file = join(keys, "id_ed25519");
  const generated = await ensureKeyPair(file, `qnet-lab-${label}`);
  return {
    publicKey: readFileSync(`${file}.pub`, "utf8").trim(),
    identityFile: isAbsolute(file) ? file : resolve(file),
    generated,
  };
}

/** The VM's ed25519 host key in `dir`/ssh, generated once and reused (so its pin stays valid). */
export async function vmHostKey(dir: string, vm: string): Promise<HostKey> {
  if (!NAME_RE.test(vm)) throw new Error(`internal: bad VM name ${JSON.stringify(vm)}`);
  const file = join(privateDir(dir), `host-${vm}_ed25519`);
  await ensureKeyPair(file, `qnet-host-${vm}`);
  return {
    privateFile: file,
    privateKey: readFileSync(file, "utf8"),
    publicKey: readFileSync(`${file}.pub`, "utf8").trim(),
  };
}

/**
 * The host key in dropbear's format (for the built-in guest's dropbear), converted with
 * dropbearconvert beside the OpenSSH file, once.
 */
export async function dropbearHostKey(key: HostKey): Promise<string> {
  const out = `${key.privateFile}.dropbear`;
  if (existsSync(out)) return out;
  const tmp = `${out}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  const argv = ["dropbearconvert", "openssh", "dropbear", key.privateFile, tmp];
  // dropbearconvert writes its output 0600.
  const r = await execa(argv[0]!, argv.slice(1), { reject: false });
  if (r.failed) {
    rmSync(tmp, { force: true });
    if ((r.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
      throw new UserError(
        "dropbearconvert is not installed; the built-in guest's SSH server needs its host key in dropbear's format",
        "apt-get install dropbear-bin",
        EXIT.environment,
      );
    }
    throw new CommandError(argv, r.exitCode ?? null, String(r.stderr));
  }
  renameSync(tmp, out);
  return out;
}

function privateDir(dir: string): string {
  const d = sshDir(dir);
  mkdirSync(d, { recursive: true, mode: 0o700 });
  return d;
}

/** Generate `file` and `file.pub` (ed25519, no passphrase) unless both exist. True when generated. */
async function ensureKeyPair(file: string, comment: string): Promise<boolean> {
  if (existsSync(file) && existsSync(`${file}.pub`)) return false;
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  rmSync(`${tmp}.pub`, { force: true });
  try {
    // ssh-keygen writes the private key 0600 itself.
    await keygen(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", tmp]);
    renameSync(`${tmp}.pub`, `${file}.pub`);
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
    rmSync(`${tmp}.pub`, { force: true });
  }
  return true;
}

async function keygen(args: string[]): Promise<string> {
  const argv = ["ssh-keygen", ...args];
  const r = await execa("ssh-keygen", args, { reject: false, stdin: "ignore" });
  if (r.failed) {
    if ((r.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
      throw new UserError(
        "ssh-keygen is not installed; qnet makes the lab's SSH keys with it",
        "apt-get install openssh-client",
        EXIT.environment,
      );
    }
    throw new CommandError(argv, r.exitCode ?? null, String(r.stderr));
  }
  return String(r.stdout).trim();
}
