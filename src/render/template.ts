// Instant start (pure): which VMs can be restored from a booted template of the built-in guest, the
// template's own command line, and its cache key (everything the restore must match; nothing per VM).
import { createHash } from "node:crypto";
import { guestCmdline } from "../guest/init-script.js";
import { builtinSshFwCfg } from "../guest/ssh.js";
import type { HostFacts, Lab, UserNetwork, Vm } from "../model/lab.js";
import { isVirtioNet, vmArgv } from "./qemu-args.js";

/** Bump when the template's layout or the way it is saved changes: part of the key. */
export const TEMPLATE_FORMAT = "qnet-template-1";

/** The MAC NIC `i` carries in a template; a restored guest gives the interface the VM's own. */
export const templateMac = (i: number) => `52:54:00:ff:00:${(i + 1).toString(16).padStart(2, "0")}`;

/** Why a VM cannot start from a template (it boots cold), or null when it can. */
export function templateIneligible(lab: Lab, vm: Vm, cold: boolean): string | null {
  if (cold) return "--cold";
  if (lab.boot === "cold") return "the topology says boot: cold";
  if (vm.guest.kind !== "builtin") return "only the built-in guest starts from a template";
  const other = vm.nics.find((n) => !isVirtioNet(n.model));
  if (other) return `NIC model ${other.model} (only virtio-net resumes at once after a restore)`;
  if (vm.cpus > 1) return "more than one vCPU (multi-queue NICs)";
  if (vm.qemu.args.length > 0) return "extra QEMU arguments";
  return null;
}

/** Files of a template in its cache directory. */
export const templateFiles = (dir: string) => ({
  ram: `${dir}/ram`,
  state: `${dir}/state`,
  qmp: `${dir}/qmp`,
  qga: `${dir}/qga`,
  serial: `${dir}/serial`,
  serialLog: `${dir}/console.log`,
  pidfile: `${dir}/pid`,
  /** Empty stand-ins of the SSH key files a VM gets over fw_cfg (same fw_cfg layout, no keys). */
  sshHostKey: `${dir}/no-host-key`,
  sshAuthorizedKeys: `${dir}/no-authorized-keys`,
});

/**
 * The command line of a VM's template: the same machine, memory, vCPUs, guest and NIC models in the same
 * order, its RAM in a shared file; NICs on an isolated user network (the device state does not depend on
 * the backend) with placeholder MACs; no name, address or tap of the VM. `tag` names the process.
 */
export function templateArgv(
  vm: Vm,
  facts: HostFacts,
  guest: { kernel: string; initrd: string; ssh: boolean },
  dir: string,
  tag: string,
): string[] {
  const net: UserNetwork = {
    type: "user",
    name: "template",
    subnet: "10.0.2.0/24",
    prefix: 24,
    hostAddr: "10.0.2.2",
    dns: "10.0.2.3",
    dhcpStart: "10.0.2.15",
    restrict: true,
    forwards: [],
  };
  const tvm: Vm = {
    ...vm,
    name: "template",
    user: null,
    nics: vm.nics.map((n, i) => ({
      ...n,
      network: net.name,
      networkType: "user",
      mac: templateMac(i),
      ip: null,
      prefix: null,
      gateway: null,
      tap: null,
    })),
  };
  const lab: Lab = {
    name: tag,
    netns: null,
    boot: "instant",
    sshKey: null,
    networks: [net],
    vms: [tvm],
  };
  const f = templateFiles(dir);
  const argv = vmArgv(lab, tvm, facts, {
    ...f,
    boot: {
      kind: "kernel",
      kernel: guest.kernel,
      initrd: guest.initrd,
      append: guestCmdline({ hostname: "template", nics: [] }),
      ram: { path: f.ram, share: true },
    },
    ...(guest.ssh
      ? {
          fwCfg: builtinSshFwCfg({
            hostKeyFile: f.sshHostKey,
            authorizedKeysFile: f.sshAuthorizedKeys,
          }),
        }
      : {}),
  });
  // Each NIC on a hub port of its own: a backend without state of its own to save (user networking
  // saves its own section, which a VM on a tap could not load).
  return argv.map((a, i) => {
    if (argv[i - 1] !== "-netdev") return a;
    const id = /(?:^|,)id=(net\d+)(?:,|$)/.exec(a)![1]!;
    return `hubport,id=${id},hubid=${id.slice(3)}`;
  });
}

/** The cache key: the template's command line with every path made neutral, QEMU's version, the guest. */
export function templateKey(
  vm: Vm,
  facts: HostFacts,
  guest: { key: string; ssh: boolean },
  qemuVersion: string,
): string {
  const argv = templateArgv(
    vm,
    facts,
    { kernel: "@kernel", initrd: "@initrd", ssh: guest.ssh },
    "@T",
    "tpl",
  );
  return createHash("sha256")
    .update(JSON.stringify([TEMPLATE_FORMAT, qemuVersion, guest.key, argv]))
    .digest("hex")
    .slice(0, 32);
}
