// Shapes shared by every `qnet doctor` check: the report, the environment paths, the check context.

import type { Runner } from "../host/runner.js";
import type { Lab } from "../model/lab.js";

export type CheckStatus = "pass" | "warn" | "fail" | "skip";

export interface CheckResult {
  /** Stable id, e.g. `dev.kvm`, `forward-policy`. */
  id: string;
  title: string;
  status: CheckStatus;
  /** One sentence: what the finding means. */
  detail: string;
  /** The exact command or change that fixes it. */
  fix?: string;
  /** What `--fix` changed. */
  fixed?: string;
}

export interface DoctorReport {
  checks: CheckResult[];
}

/** Every path and binary the checks read, overridable so tests can point them at temporary trees. */
export interface DoctorEnv {
  procRoot: string;
  sysRoot: string;
  devRoot: string;
  bridgeConf: string;
  bridgeHelper: string;
  sysctlDir: string;
  udevRulesDir: string;
  /** systemd-networkd's per-link state files (named by ifindex). */
  networkdLinksDir: string;
  /** QEMU binary used when there is no lab (a lab's VMs name their own). */
  qemuBinary: string;
  /** Path of `sysctl` written into the udev rule. */
  sysctlBinary: string;
  /** Where the built-in guest's kernel is looked for, as `qnet up` looks. */
  bootDir: string;
  modulesRoot: string;
  /** The root whose etc/os-release names the distribution (for package names). */
  osRoot: string;
}

export const DEFAULT_ENV: DoctorEnv = {
  procRoot: "/proc",
  sysRoot: "/sys",
  devRoot: "/dev",
  bridgeConf: "/etc/qemu/bridge.conf",
  bridgeHelper: "/usr/lib/qemu/qemu-bridge-helper",
  sysctlDir: "/etc/sysctl.d",
  udevRulesDir: "/etc/udev/rules.d",
  networkdLinksDir: "/run/systemd/netif/links",
  qemuBinary: "qemu-system-x86_64",
  sysctlBinary: "/sbin/sysctl",
  bootDir: "/boot",
  modulesRoot: "/lib/modules",
  osRoot: "/",
};

export interface DoctorContext {
  lab: Lab | null;
  runner: Runner;
  fix: boolean;
  /** Asked once before a fix that installs software; false: do not. */
  confirm: (question: string) => Promise<boolean>;
  env: DoctorEnv;
}

export type Check = (ctx: DoctorContext) => Promise<CheckResult[]>;
