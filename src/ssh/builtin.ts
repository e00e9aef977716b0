// Files the built-in guest's SSH server needs at launch: its pinned host key in dropbear's format, root's authorized keys.
import { join } from "node:path";
import type { BuiltinSshFiles } from "../guest/ssh.js";
import { writeFileAtomic } from "../host/files.js";
import { dropbearHostKey, sshDir, vmHostKey } from "./keys.js";

/**
 * Make (once) and return the built-in guest's SSH files in `dir` (the lab's state directory), plus
 * the host key's public half to pin. Pass the files to builtinSshArgs (guest/ssh.ts); QEMU must be able
 * to read them (they are 0600: QEMU runs as their owner).
 */
export async function builtinSshFiles(
  dir: string,
  vm: string,
  authorizedKeys: readonly string[],
): Promise<BuiltinSshFiles & { publicKey: string }> {
  const key = await vmHostKey(dir, vm);
  const hostKeyFile = await dropbearHostKey(key);
  const authorizedKeysFile = join(sshDir(dir), `${vm}.authorized_keys`);
  writeFileAtomic(authorizedKeysFile, `${authorizedKeys.map((k) => k.trim()).join("\n")}\n`, 0o600);
  return { hostKeyFile, authorizedKeysFile, publicKey: key.publicKey };
}
