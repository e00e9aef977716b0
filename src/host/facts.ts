// Run-time facts about this machine that renderers need: can QEMU use KVM and vhost-net here?
import { accessSync, constants, existsSync } from "node:fs";
import type { HostFacts } from "../model/lab.js";

function usable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * KVM when /dev/kvm is usable, unless it is PVM's (/sys/module/kvm_pvm: nested virtualisation without
 * hardware support, which runs only PVM-enabled guest kernels; stock kernels hang in early boot there).
 * QNET_ACCEL=kvm|tcg overrides the choice.
 */
export function detectFacts(
  opts: { devRoot?: string; sysRoot?: string; env?: NodeJS.ProcessEnv } = {},
): HostFacts {
  const dev = opts.devRoot ?? "/dev";
  const sys = opts.sysRoot ?? "/sys";
  const forced = (opts.env ?? process.env).QNET_ACCEL;
  const kvm =
    forced === "kvm"
      ? true
      : forced === "tcg"
        ? false
        : usable(`${dev}/kvm`) && !existsSync(`${sys}/module/kvm_pvm`);
  return { kvm, vhost: usable(`${dev}/vhost-net`) };
}
