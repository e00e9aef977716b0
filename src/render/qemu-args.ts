// QEMU argv: the network fragment of a VM (`qnet args`) and the full command line qnet launches.
import type { HostFacts, Lab, Network, Nic, Vm } from "../model/lab.js";
import { imageBootArgs } from "./image-args.js";
import { qemuOpts, qemuValue } from "./qemu-escape.js";

/** vhost-net accelerates virtio-net over tap; multi-queue needs virtio-net and more than one vCPU. */
export function isVirtioNet(model: string): boolean {
  return (
    model === "virtio-net-pci" ||
    model === "virtio-net" ||
    model === "virtio-net-pci-non-transitional"
  );
}

export function netdevArg(vm: Vm, nic: Nic, net: Network, facts: HostFacts): string {
  if (net.type === "user") {
    return qemuOpts("user", [
      ["id", nic.netdevId],
      ["net", net.subnet],
      ["host", net.hostAddr],
      ["dns", net.dns],
      ["dhcpstart", net.dhcpStart],
      ["restrict", net.restrict ? "on" : undefined],
      ["hostname", vm.name],
      ...net.forwards.map(
        (f) =>
          ["hostfwd", `${f.proto}:${f.hostAddr}:${f.hostPort}-:${f.guestPort}`] as [string, string],
      ),
    ]);
  }
  const virtio = isVirtioNet(nic.model);
  const queues = virtio && vm.cpus > 1 ? vm.cpus : undefined;
  if (net.type === "bridged" && net.mode === "macvtap") {
    // A macvtap is opened through its /dev/tapN file by the launcher, which passes it as fd 3+index.
    return qemuOpts("tap", [
      ["id", nic.netdevId],
      ["fd", 3 + nic.index],
      ["vhost", virtio && facts.vhost ? "on" : undefined],
    ]);
  }
  return qemuOpts("tap", [
    ["id", nic.netdevId],
    ["ifname", nic.tap!],
    ["script", "no"],
    ["downscript", "no"],
    ["vhost", virtio && facts.vhost ? "on" : undefined],
    ["queues", queues],
  ]);
}

export function deviceArg(vm: Vm, nic: Nic, net: Network): string {
  const mq = isVirtioNet(nic.model) && vm.cpus > 1 && net.type !== "user";
  return qemuOpts(qemuValue(nic.model), [
    ["netdev", nic.netdevId],
    ["mac", nic.mac],
    ["mq", mq ? "on" : undefined],
    ["vectors", mq ? 2 * vm.cpus + 2 : undefined],
  ]);
}

/** `-netdev … -device …` for every NIC of a VM: what a user pastes into their own QEMU command. */
export function networkArgs(lab: Lab, vm: Vm, facts: HostFacts): string[] {
  const nets = new Map(lab.networks.map((n) => [n.name, n]));
  return vm.nics.flatMap((nic) => {
    const net = nets.get(nic.network)!;
    return ["-netdev", netdevArg(vm, nic, net, facts), "-device", deviceArg(vm, nic, net)];
  });
}

/** Paths of one VM's run-time files, in the lab's state directory. */
export interface VmRuntime {
  qmp: string;
  qga: string;
  serial: string;
  serialLog: string;
  pidfile: string;
  /**
   * What boots: a kernel (built-in guest or the user's), a disk plus an optional cloud-init seed, or a
   * guest restored from a template (`-incoming defer`: QEMU waits for its state over QMP).
   */
  boot:
    | {
        kind: "kernel";
        kernel: string;
        initrd: string | null;
        append: string | null;
        /** The guest's RAM in this file, shared (a template being made) or copy-on-write. */
        ram?: GuestRam;
      }
    | { kind: "disk"; disk: string; seed: string | null }
    | {
        kind: "image";
        /** A built image's kernel (direct boot); null: the firmware boots the disk. */
        boot: { kernel: string; initrd: string; append: string } | null;
        /** The VM's copy-on-write disk over the cached base image. */
        overlay: string;
        seed: string;
      }
    | { kind: "restore"; ram: GuestRam };
  /** Files the guest reads through fw_cfg (the built-in guest's SSH keys: never on the command line). */
  fwCfg?: { name: string; file: string }[];
}

/** Guest RAM backed by a file: `share` writes go to the file (a template), else copy-on-write. */
export interface GuestRam {
  path: string;
  share: boolean;
}

/**
 * The `-name` value of a lab's VM. Lab and VM names cannot hold `:`, so this one argv element names
 * exactly one VM of one lab: qnet recognises its QEMU processes by it (lab `a` VM `b-c` and lab `a-b`
 * VM `c` differ here, where a `-` separator would not).
 */
export function qemuNameArg(lab: string, vm: string): string {
  return `guest=${lab}:${vm},process=qnet:${lab}:${vm}`;
}

/** The full argv qnet launches for a VM (binary first). Deterministic for the same inputs. */
export function vmArgv(lab: Lab, vm: Vm, facts: HostFacts, rt: VmRuntime): string[] {
  const ram =
    rt.boot.kind === "restore" ? rt.boot.ram : rt.boot.kind === "kernel" ? rt.boot.ram : undefined;
  const argv = [
    vm.qemu.binary,
    "-name",
    qemuNameArg(lab.name, vm.name),
    "-nodefaults",
    "-no-user-config",
    // A guest that panics or reboots ends its QEMU process, so status shows it stopped.
    "-no-reboot",
    "-display",
    "none",
    ...(ram
      ? [
          "-object",
          qemuOpts("memory-backend-file", [
            ["id", "pc.ram"],
            ["size", `${vm.memory}M`],
            ["mem-path", ram.path],
            ["share", ram.share ? "on" : "off"],
          ]),
        ]
      : []),
    "-machine",
    `${vm.qemu.machine},accel=${facts.kvm ? "kvm" : "tcg"}${ram ? ",memory-backend=pc.ram" : ""}`,
    "-cpu",
    facts.kvm ? "host" : "max",
    "-m",
    String(vm.memory),
    "-smp",
    String(vm.cpus),
  ];
  if (rt.boot.kind === "kernel") {
    argv.push("-kernel", rt.boot.kernel);
    if (rt.boot.initrd) argv.push("-initrd", rt.boot.initrd);
    if (rt.boot.append) argv.push("-append", rt.boot.append);
  } else if (rt.boot.kind === "restore") {
    argv.push("-incoming", "defer");
  } else if (rt.boot.kind === "image") {
    argv.push(...imageBootArgs(rt.boot));
  } else {
    argv.push(
      "-drive",
      qemuOpts("if=virtio", [
        ["file", rt.boot.disk],
        ["cache", "unsafe"],
      ]),
    );
    if (rt.boot.seed) {
      argv.push(
        "-drive",
        qemuOpts("if=virtio", [
          ["file", rt.boot.seed],
          ["format", "raw"],
          ["readonly", "on"],
        ]),
      );
    }
  }
  for (const f of rt.fwCfg ?? [])
    argv.push("-fw_cfg", qemuOpts(`name=${f.name}`, [["file", f.file]]));
  // No NIC option ROM: qnet boots kernels directly or from disk, never by PXE; skipping it saves boot time.
  for (const model of [...new Set(vm.nics.map((n) => n.model))].sort()) {
    argv.push("-global", `${qemuValue(model)}.romfile=`);
  }
  argv.push(...networkArgs(lab, vm, facts));
  argv.push(
    "-chardev",
    qemuOpts("socket", [
      ["id", "qmp"],
      ["path", rt.qmp],
      ["server", "on"],
      ["wait", "off"],
    ]),
    "-mon",
    "chardev=qmp,mode=control",
    "-chardev",
    qemuOpts("socket", [
      ["id", "serial0"],
      ["path", rt.serial],
      ["server", "on"],
      ["wait", "off"],
      ["logfile", rt.serialLog],
    ]),
    "-serial",
    "chardev:serial0",
    "-device",
    "virtio-serial-pci,id=vser0",
    "-chardev",
    qemuOpts("socket", [
      ["id", "qga0"],
      ["path", rt.qga],
      ["server", "on"],
      ["wait", "off"],
    ]),
    "-device",
    "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
    "-pidfile",
    rt.pidfile,
    "-daemonize",
  );
  argv.push(...vm.qemu.args);
  return argv;
}
