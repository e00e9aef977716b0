// The built-in guest's SSH server (dropbear): the fw_cfg names its keys arrive under, and the QEMU arguments that deliver them.
import { qemuOpts } from "../render/qemu-escape.js";

/**
 * fw_cfg entries (the guest reads /sys/firmware/qemu_fw_cfg/by_name/<name>/raw). Keys travel as files
 * QEMU reads, never as command-line strings: /proc/PID/cmdline is readable by every local user.
 */
export const FW_CFG_HOST_KEY = "opt/qnet/ssh_host_key";
export const FW_CFG_AUTHORIZED_KEYS = "opt/qnet/authorized_keys";

export interface BuiltinSshFiles {
  /** The VM's host key in dropbear's format (dropbearconvert of the pinned OpenSSH key), 0600. */
  hostKeyFile: string;
  /** OpenSSH authorized_keys lines for root. */
  authorizedKeysFile: string;
}

/** The fw_cfg files that give a built-in guest its SSH keys (VmRuntime.fwCfg). */
export function builtinSshFwCfg(f: BuiltinSshFiles): { name: string; file: string }[] {
  return [
    { name: FW_CFG_HOST_KEY, file: f.hostKeyFile },
    { name: FW_CFG_AUTHORIZED_KEYS, file: f.authorizedKeysFile },
  ];
}

/** The QEMU arguments that give a built-in guest its SSH keys. */
export function builtinSshArgs(f: BuiltinSshFiles): string[] {
  return builtinSshFwCfg(f).flatMap((e) => [
    "-fw_cfg",
    qemuOpts(`name=${e.name}`, [["file", e.file]]),
  ]);
}
