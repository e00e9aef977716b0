// Checks the QEMU binary each VM uses: it runs, its version, and the netdev types and NIC models the lab needs.
import type { Vm } from "../model/lab.js";
import { probe } from "./run.js";
import type { CheckResult, DoctorContext } from "./types.js";

/** `-netdev help`: the backend names after the header line. */
export function parseNetdevHelp(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.endsWith(":") && /^[A-Za-z0-9_-]+$/.test(l));
}

/** `-device help`: names and aliases of the "Network devices:" section. */
export function parseNicModels(text: string): string[] {
  const out: string[] = [];
  let inNet = false;
  for (const line of text.split("\n")) {
    if (/^\S.*:$/.test(line.trim()) && !line.startsWith("name "))
      inNet = line.trim() === "Network devices:";
    if (!inNet) continue;
    const m = /^name "([^"]+)"(?:.*?alias "([^"]+)")?/.exec(line.trim());
    if (m) out.push(m[1]!, ...(m[2] ? [m[2]] : []));
  }
  return out;
}

interface Use {
  what: string;
  who: string;
}

function netdevUses(vms: Vm[]): Map<string, Use[]> {
  const m = new Map<string, Use[]>();
  for (const vm of vms) {
    for (const nic of vm.nics) {
      const type = nic.networkType === "user" ? "user" : "tap";
      m.set(type, [...(m.get(type) ?? []), { what: type, who: `${vm.name} nic ${nic.index}` }]);
    }
  }
  return m;
}

function modelUses(vms: Vm[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const vm of vms)
    for (const nic of vm.nics)
      m.set(nic.model, [...(m.get(nic.model) ?? []), `${vm.name} nic ${nic.index}`]);
  return m;
}

async function checkBinary(
  ctx: DoctorContext,
  binary: string,
  vms: Vm[],
  suffix: string,
): Promise<CheckResult[]> {
  const opts = { hostNamespace: true };
  const v = await probe(ctx.runner, [binary, "-version"], opts);
  const users = vms.length ? ` (used by ${vms.map((x) => x.name).join(", ")})` : "";
  if (!v.ok) {
    return [
      {
        id: `qemu.binary${suffix}`,
        title: "QEMU binary",
        status: "fail",
        detail: v.missing
          ? `${binary}${users} is not installed or not on PATH, so no VM can start.`
          : `${binary} -version failed (exit ${v.exitCode}): ${v.stderr.trim().split("\n")[0] ?? ""}.`,
        fix: "apt install qemu-system-x86  (or set qemu.binary in the topology to an installed QEMU)",
      },
    ];
  }
  const version = /version\s+(\S+)/.exec(v.stdout)?.[1] ?? "unknown";
  const out: CheckResult[] = [
    {
      id: `qemu.binary${suffix}`,
      title: "QEMU binary",
      status: "pass",
      detail: `${binary} is QEMU ${version}${users}.`,
    },
  ];
  const nd = await probe(ctx.runner, [binary, "-netdev", "help"], opts);
  const have = new Set(parseNetdevHelp(nd.stdout));
  const needNd = netdevUses(vms);
  const missingNd = [...needNd.keys()].filter((t) => !have.has(t)).sort();
  if (!nd.ok || have.size === 0) {
    out.push({
      id: `qemu.netdev${suffix}`,
      title: "QEMU netdev types",
      status: "warn",
      detail: `${binary} -netdev help gave no list, so the netdev types are unchecked.`,
    });
  } else if (missingNd.length) {
    out.push({
      id: `qemu.netdev${suffix}`,
      title: "QEMU netdev types",
      status: "fail",
      detail: `QEMU ${version} lacks netdev ${missingNd
        .map(
          (t) =>
            `${t} (needed by ${needNd
              .get(t)!
              .map((u) => u.who)
              .join(", ")})`,
        )
        .join(", ")}.`,
      fix: missingNd.includes("user")
        ? "install a QEMU built with slirp (Debian: qemu-system-x86 from bookworm or later), or use a bridge network"
        : "install a QEMU built with tap support",
    });
  } else {
    const used = [...needNd.keys()].sort();
    out.push({
      id: `qemu.netdev${suffix}`,
      title: "QEMU netdev types",
      status: "pass",
      detail: used.length
        ? `QEMU ${version} has netdev ${used.join(", ")}.`
        : "The lab uses no netdev.",
    });
  }
  const dv = await probe(ctx.runner, [binary, "-device", "help"], opts);
  const models = new Set(parseNicModels(dv.stdout));
  const needModels = modelUses(vms);
  const missingModels = [...needModels.keys()].filter((m) => !models.has(m)).sort();
  if (!dv.ok || models.size === 0) {
    out.push({
      id: `qemu.nic-models${suffix}`,
      title: "QEMU NIC models",
      status: "warn",
      detail: `${binary} -device help listed no network devices, so the NIC models are unchecked.`,
    });
  } else if (missingModels.length) {
    const known = [...models].filter((m) =>
      /^(virtio-net-pci|e1000|e1000e|rtl8139|vmxnet3)$/.test(m),
    );
    out.push({
      id: `qemu.nic-models${suffix}`,
      title: "QEMU NIC models",
      status: "fail",
      detail: `QEMU ${version} has no NIC model ${missingModels.map((m) => `${m} (used by ${needModels.get(m)!.join(", ")})`).join(", ")}, so those VMs will not start.`,
      fix: `set \`model:\` to a NIC model this QEMU has, e.g. ${(known.length ? known : [...models].slice(0, 5)).join(", ")}  (list: ${binary} -device help)`,
    });
  } else {
    const used = [...needModels.keys()].sort();
    out.push({
      id: `qemu.nic-models${suffix}`,
      title: "QEMU NIC models",
      status: "pass",
      detail: used.length
        ? `QEMU ${version} has NIC model ${used.join(", ")}.`
        : "The lab uses no NIC.",
    });
  }
  return out;
}

export async function checkQemu(ctx: DoctorContext): Promise<CheckResult[]> {
  const groups = new Map<string, Vm[]>();
  for (const vm of ctx.lab?.vms ?? [])
    groups.set(vm.qemu.binary, [...(groups.get(vm.qemu.binary) ?? []), vm]);
  if (groups.size === 0) groups.set(ctx.env.qemuBinary, []);
  const out: CheckResult[] = [];
  const binaries = [...groups.keys()].sort();
  for (const b of binaries)
    out.push(...(await checkBinary(ctx, b, groups.get(b)!, binaries.length > 1 ? `:${b}` : "")));
  return out;
}
