// `qnet ssh` and `qnet ssh-config`: each VM's route to its SSH server, the lab's login key, and every VM's
// host key pinned in the lab's known_hosts (made by up, never learnt on first use).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { EXIT, UserError } from "../errors.js";
import { writeFileAtomic } from "../host/files.js";
import type { Lab, Vm } from "../model/lab.js";
import {
  hostKeyAlias,
  knownHostsLine,
  renderSshConfig,
  type SshRoute,
} from "../render/ssh-config.js";
import { sshLogin, sshRoute } from "../resolve/ssh-route.js";
import { labSshKey, sshDir } from "../ssh/keys.js";
import { vmAddresses } from "./vm-addresses.js";

/** The lab's known_hosts, written from the host keys up made (one line per VM, pinned by alias). */
export function writeKnownHosts(dir: string, lab: Lab): string {
  const file = join(sshDir(dir), "known_hosts");
  const lines = lab.vms.flatMap((vm) => {
    const pub = join(sshDir(dir), `host-${vm.name}_ed25519.pub`);
    return existsSync(pub)
      ? [knownHostsLine(hostKeyAlias(lab.name, vm.name), readFileSync(pub, "utf8"))]
      : [];
  });
  writeFileAtomic(file, lines.length ? `${lines.join("\n")}\n` : "", 0o600);
  return file;
}

/** The LAN addresses bridged NICs hold, from the guest agent (only those VMs are asked). */
async function liveAddresses(dir: string, lab: Lab, vm: Vm): Promise<Map<number, string>> {
  const bridged = new Set(lab.networks.filter((n) => n.type === "bridged").map((n) => n.name));
  if (!vm.nics.some((n) => bridged.has(n.network))) return new Map();
  const a = await vmAddresses(dir, vm, 3_000);
  if (!a.ok) return new Map();
  return new Map(
    a.nics.flatMap((n) =>
      n.ipv4[0] ? [[n.nic, n.ipv4[0].split("/")[0]!] as [number, string]] : [],
    ),
  );
}

export interface LabSsh {
  routes: SshRoute[];
  /** VMs without a route, and why. */
  unreachable: { vm: string; reason: string; hint: string }[];
  config: string;
}

/** Every VM's SSH route and the OpenSSH config of the lab. */
export async function labSsh(dir: string, lab: Lab, only?: string): Promise<LabSsh> {
  const login = await labSshKey(dir, lab.name, lab.sshKey ?? undefined);
  const knownHostsFile = writeKnownHosts(dir, lab);
  const routes: SshRoute[] = [];
  const unreachable: LabSsh["unreachable"] = [];
  for (const vm of lab.vms) {
    if (only !== undefined && vm.name !== only) continue;
    const user = sshLogin(vm);
    if (user === null) {
      unreachable.push({
        vm: vm.name,
        reason: `VM ${vm.name} boots its own kernel: qnet does not know its login or host key`,
        hint: "log in with `qnet console` or `qnet exec`",
      });
      continue;
    }
    const r = sshRoute(lab, vm, await liveAddresses(dir, lab, vm));
    if (!r.ok) {
      unreachable.push({ vm: vm.name, reason: r.reason, hint: r.hint });
      continue;
    }
    routes.push({
      vm: vm.name,
      hostName: r.hostName,
      port: r.port,
      user,
      identityFile: login.identityFile,
      knownHostsFile,
      hostKeyAlias: hostKeyAlias(lab.name, vm.name),
      via: r.via,
    });
  }
  return { routes, unreachable, config: renderSshConfig(lab.name, routes) };
}

/** The argv of `ssh` to VM `vm` with `command` (run inside the lab's namespace when it has one). */
export async function sshArgv(
  dir: string,
  lab: Lab,
  netns: string | null,
  vm: string,
  command: string[],
): Promise<string[]> {
  if (!lab.vms.some((v) => v.name === vm))
    throw new UserError(
      `lab ${lab.name} has no VM named "${vm}"`,
      `VMs: ${lab.vms.map((v) => v.name).join(", ")}`,
      EXIT.usage,
    );
  const s = await labSsh(dir, lab, vm);
  const bad = s.unreachable[0];
  if (bad) throw new UserError(bad.reason, bad.hint);
  const config = join(sshDir(dir), "config");
  writeFileAtomic(config, s.config, 0o600);
  const argv = ["ssh", "-F", config, vm, ...(command.length ? ["--", ...command] : [])];
  return netns ? ["ip", "netns", "exec", netns, ...argv] : argv;
}
