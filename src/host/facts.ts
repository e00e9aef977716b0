// Run-time facts about this machine that renderers need: can QEMU use KVM and vhost-net here?
import { accessSync, constants } from "node:fs";
import type { HostFacts } from "../model/lab.js";

function usable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export function detectFacts(devRoot = "/dev"): HostFacts {
  return { kvm: usable(`${devRoot}/kvm`), vhost: usable(`${devRoot}/vhost-net`) };
}
