// One QEMU invocation (or a pasted fragment of one): its NICs and backends, memory, CPUs, boot and the rest.
import type { ImportFinding, Loc } from "./located.js";
import { type OptPair, Opts, parseOptionArg, parseQemuOpts } from "./qemu-opts.js";
import type { ShellCommand, ShellWord } from "./shell-script.js";

/** What a NIC is plugged into on the host side. */
export type Backend =
  | { kind: "user"; opts: Opts; id: string | null; loc: Loc; word: ShellWord }
  | { kind: "tap"; ifname: string | null; fd: boolean; scriptSet: boolean; loc: Loc }
  | { kind: "bridge"; bridge: string; loc: Loc }
  | { kind: "none"; loc: Loc };

export interface NicFact {
  model: string;
  /** The model as QEMU would pick it when the command line names none. */
  modelDefault: boolean;
  mac: string | null;
  backend: Backend;
  loc: Loc;
  source: string;
}

export interface VmFact {
  /** From `-name`, or the comment above the command. */
  name: string | null;
  nameFrom: string | null;
  /** The lab of qnet's own `-name guest=LAB:VM`. */
  lab: string | null;
  loc: Loc;
  line: number;
  fragment: boolean;
  comments: string[];
  binary: string | null;
  machine: string | null;
  memory: number | null;
  cpus: number | null;
  kernel: { path: string; builtin: boolean } | null;
  initrd: string | null;
  append: string | null;
  disk: string | null;
  /** Drives that are a qnet cloud-init seed (`format=raw,readonly=on` of a genisoimage image). */
  seedDrives: string[];
  nics: NicFact[];
  /** Options qnet does not model, kept as written for `qemu.args`. */
  args: string[];
  findings: ImportFinding[];
}

/** The first word of a QEMU invocation. */
export function isQemuBinary(word: string): boolean {
  const base = word.replace(/^.*\//, "");
  return /^qemu-system-[A-Za-z0-9_]+$/.test(base) || base === "qemu-kvm" || base === "kvm";
}

/** Placeholders that stand for qnet's built-in guest (export's variables, plan's text). */
const BUILTIN_KERNEL = /^(\$\{?QNET_GUEST_KERNEL\}?|<built-in guest kernel>)$/;
const _BUILTIN_INITRD = /^(\$\{?QNET_GUEST_INITRD\}?|<built-in guest initrd>)$/;

/** Options that take no argument (the rest take one). */
const NO_ARG = new Set([
  "-nodefaults",
  "-no-user-config",
  "-no-reboot",
  "-no-shutdown",
  "-daemonize",
  "-nographic",
  "-enable-kvm",
  "-snapshot",
  "-S",
  "-s",
  "-no-hpet",
  "-usb",
  "-no-acpi",
  "-full-screen",
  "-version",
  "-help",
  "-h",
]);

/** Options whose job qnet does itself: dropped, with a note saying so. */
const QNET_OWN: Record<string, string> = {
  "-nodefaults": "qnet always starts QEMU with -nodefaults",
  "-no-user-config": "qnet always starts QEMU with -no-user-config",
  "-no-reboot": "qnet starts VMs with -no-reboot (a guest reboot ends the VM)",
  "-daemonize": "qnet runs QEMU detached itself",
  "-pidfile": "qnet keeps a pidfile per VM in the lab's state directory",
  "-display":
    "qnet runs VMs without a display (qnet console LAB VM attaches to the serial console)",
  "-nographic":
    "qnet runs VMs without a display (qnet console LAB VM attaches to the serial console)",
  "-serial": "qnet gives each VM a serial console socket (qnet console LAB VM)",
  "-chardev": "qnet makes the VM's QMP, serial and guest-agent sockets itself",
  "-mon": "qnet makes the VM's QMP socket itself",
  "-qmp": "qnet makes the VM's QMP socket itself",
  "-monitor": "qnet makes the VM's QMP socket itself",
  "-enable-kvm": "qnet uses KVM when /dev/kvm works and TCG otherwise (QNET_ACCEL forces either)",
  "-accel": "qnet uses KVM when /dev/kvm works and TCG otherwise (QNET_ACCEL forces either)",
  "-cpu": "qnet picks the CPU model (host with KVM, max with TCG)",
  "-boot": "qnet boots the kernel or the disk it is given",
};

/** `-nic`/`-net nic` model names that are not device names (`model=virtio` is virtio-net-pci). */
const NIC_ALIASES: Record<string, string> = { virtio: "virtio-net-pci" };
const nicModel = (m: string | undefined) => (m === undefined ? undefined : (NIC_ALIASES[m] ?? m));

/** QEMU's MiB from `-m` (`256`, `256M`, `1G`, `size=1G`). */
function mib(v: string): number | null {
  const m = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)[bB]?$/.exec(v.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const unit = (m[2] || "M").toUpperCase();
  const f = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 }[unit]!;
  const r = n * f;
  return Number.isInteger(r) ? r : null;
}

export class QemuReader {
  private readonly f: VmFact;
  private readonly netdevs = new Map<string, Backend>();
  /** Legacy -net: backends and NICs per hub (vlan). */
  private readonly hubs = new Map<string, Backend>();
  private readonly hubNics: { hub: string; nic: Omit<NicFact, "backend">; at: number }[] = [];
  private readonly devices: { opts: Opts; word: ShellWord; loc: Loc; src: string }[] = [];
  private readonly order: (NicFact | { pending: number })[] = [];

  constructor(
    private readonly c: ShellCommand,
    fragment: boolean,
  ) {
    this.f = {
      name: null,
      nameFrom: null,
      lab: null,
      loc: c.loc,
      line: c.loc.line,
      fragment,
      comments: c.comments,
      binary: fragment ? null : c.words[0]!.text,
      machine: null,
      memory: null,
      cpus: null,
      kernel: null,
      initrd: null,
      append: null,
      disk: null,
      seedDrives: [],
      nics: [],
      args: [],
      findings: [],
    };
  }

  private finding(severity: ImportFinding["severity"], loc: Loc, message: string) {
    this.f.findings.push({ severity, loc, message });
  }

  /** Parse an option argument; a malformed one is a located error (and the option is skipped). */
  private opts(word: ShellWord, implied?: string): Opts | null {
    const r = parseOptionArg(word.text, implied);
    if (!r.ok) {
      this.finding(
        "error",
        word.at(r.at),
        `cannot read QEMU option ${JSON.stringify(word.text)}: ${r.message}`,
      );
      return null;
    }
    return new Opts(r.pairs);
  }

  private keep(opt: ShellWord, arg: ShellWord | undefined, why: string) {
    this.f.args.push(opt.text, ...(arg ? [arg.text] : []));
    this.finding(
      "warning",
      opt.loc,
      `${opt.text}${arg ? ` ${arg.text}` : ""}: ${why}; kept as written in qemu.args`,
    );
  }

  private leftovers(o: Opts, what: string, loc: Loc, ignore: string[] = []) {
    const rest = o.rest().filter((p) => !ignore.includes(p.key));
    if (rest.length)
      this.finding(
        "warning",
        loc,
        `${what}: ${rest.map((p: OptPair) => `${p.key}=${p.value}`).join(",")} not modelled by qnet and not kept`,
      );
  }

  read(): VmFact {
    let w = this.c.words;
    const src = (i: number) =>
      `line ${w[i]!.loc.line}: ${w[i]!.raw}${w[i + 1] ? ` ${w[i + 1]!.raw}` : ""}`;
    let i = this.f.fragment ? 0 : 1;
    // qnet's own command line (its -name marks it) ends with -daemonize; what follows is qemu.args.
    const ours = w.some((x, j) => w[j - 1]?.text === "-name" && /,process=qnet:/.test(x.text));
    const end = ours ? w.findIndex((x) => x.text === "-daemonize") : -1;
    const tail = end >= 0 ? w.slice(end + 1).map((x) => x.text) : [];
    if (end >= 0) w = w.slice(0, end + 1);
    for (; i < w.length; i++) {
      const opt = w[i]!;
      const o = opt.text.replace(/^--/, "-");
      if (!o.startsWith("-")) {
        this.keep(opt, undefined, "not an option (a disk image given without -hda?)");
        continue;
      }
      const takes = !NO_ARG.has(o);
      const arg = takes ? w[i + 1] : undefined;
      if (takes) {
        if (!arg) {
          this.finding("error", opt.loc, `${o} needs an argument`);
          break;
        }
        i++;
      }
      this.option(o, opt, arg, src(i - (takes ? 1 : 0)));
    }
    this.f.args.push(...tail);
    this.resolveNics();
    return this.f;
  }

  private option(o: string, opt: ShellWord, arg: ShellWord | undefined, src: string) {
    const a = arg?.text ?? "";
    switch (o) {
      case "-name": {
        const opts = this.opts(arg!, "guest");
        const guest = opts?.get("guest") ?? "";
        const m = /^([A-Za-z0-9][A-Za-z0-9_-]*):([A-Za-z0-9][A-Za-z0-9_-]*)$/.exec(guest);
        if (m) {
          this.f.lab = m[1]!;
          this.f.name = m[2]!;
        } else this.f.name = guest;
        this.f.nameFrom = `-name ${a}`;
        opts?.get("process");
        return;
      }
      case "-m": {
        const opts = this.opts(arg!, "size");
        const size = opts?.get("size");
        const v = size === undefined ? null : mib(size);
        if (v === null) this.keep(opt, arg, "not a memory size qnet reads");
        else this.f.memory = v;
        if (opts) this.leftovers(opts, "-m", arg!.loc);
        return;
      }
      case "-smp": {
        const opts = this.opts(arg!, "cpus");
        const cpus = opts?.get("cpus");
        if (cpus !== undefined && /^\d+$/.test(cpus)) this.f.cpus = Number(cpus);
        else this.keep(opt, arg, "qnet reads -smp N only");
        if (opts) this.leftovers(opts, "-smp", arg!.loc);
        return;
      }
      case "-machine":
      case "-M": {
        const opts = this.opts(arg!, "type");
        if (!opts) return;
        const type = opts.get("type");
        const accel = opts.get("accel");
        if (accel) this.finding("note", arg!.loc, `accel=${accel}: ${QNET_OWN["-accel"]}`);
        const rest = opts.rest().map((p) => `${p.key}=${p.value.replaceAll(",", ",,")}`);
        this.f.machine = [type ?? "q35", ...rest].join(",");
        return;
      }
      case "-kernel":
        if (BUILTIN_KERNEL.test(arg!.raw) || BUILTIN_KERNEL.test(a))
          this.f.kernel = { path: a, builtin: true };
        else {
          if (!arg!.literal)
            this.finding(
              "warning",
              arg!.loc,
              `-kernel ${arg!.raw}: the shell fills in this path; kept as written`,
            );
          this.f.kernel = { path: a, builtin: false };
        }
        return;
      case "-initrd":
        this.f.initrd = a;
        return;
      case "-append":
        this.f.append = a;
        return;
      case "-hda":
        this.disk(a, arg!, src);
        return;
      case "-drive": {
        const opts = this.opts(arg!);
        if (!opts) return;
        const file = opts.get("file");
        if (!file) return this.keep(opt, arg, "a drive without file=");
        const format = opts.get("format");
        const ro = opts.get("readonly");
        if (format === "raw" && ro === "on" && /\.seed\.img$/.test(file)) {
          this.f.seedDrives.push(file);
          opts.get("if");
          this.leftovers(opts, "-drive", arg!.loc);
          return;
        }
        if (this.f.disk) return this.keep(opt, arg, "qnet attaches one disk per VM");
        const iface = opts.get("if");
        const cache = opts.get("cache");
        if (iface && iface !== "virtio")
          this.finding("note", arg!.loc, `if=${iface}: qnet attaches the disk as if=virtio`);
        if (cache && cache !== "unsafe")
          this.finding("note", arg!.loc, `cache=${cache}: qnet uses cache=unsafe for lab disks`);
        if (format)
          this.finding("note", arg!.loc, `format=${format}: qnet lets QEMU detect the format`);
        this.leftovers(opts, "-drive", arg!.loc, []);
        this.disk(file, arg!, src);
        return;
      }
      case "-netdev": {
        const opts = this.opts(arg!, "type");
        if (!opts) return;
        const id = opts.get("id");
        if (!id)
          return this.finding("error", arg!.loc, "-netdev without id=: no -device can use it");
        const b = this.backend(opts, arg!, id);
        if (b) this.netdevs.set(id, b);
        else
          this.keep(
            opt,
            arg,
            `netdev type ${opts.get("type")} is not one qnet makes (user, tap, bridge)`,
          );
        return;
      }
      case "-nic": {
        const opts = this.opts(arg!, "type");
        if (!opts) return;
        if (opts.get("type") === "none") return;
        const model = nicModel(opts.get("model"));
        const mac = opts.get("mac");
        const b = this.backend(opts, arg!, null, ["model", "mac", "id"]);
        if (!b) return this.keep(opt, arg, `nic type ${opts.get("type")} is not one qnet makes`);
        this.order.push({
          model: model ?? this.defaultModel(),
          modelDefault: model === undefined,
          mac: mac ?? null,
          backend: b,
          loc: opt.loc,
          source: src,
        });
        return;
      }
      case "-net": {
        const opts = this.opts(arg!, "type");
        if (!opts) return;
        const type = opts.get("type");
        const hub = opts.get("vlan") ?? "0";
        if (type === "none") return;
        if (type === "nic") {
          const model = nicModel(opts.get("model"));
          const netdev = opts.get("netdev");
          const nic = {
            model: model ?? this.defaultModel(),
            modelDefault: model === undefined,
            mac: opts.get("macaddr") ?? null,
            loc: opt.loc,
            source: src,
          };
          opts.get("name");
          this.leftovers(opts, "-net nic", arg!.loc);
          if (netdev) {
            this.order.push({ pending: this.devices.length });
            this.devices.push({
              opts: new Opts([
                { key: "driver", value: nic.model, at: 0, valueAt: 0, form: "pair" },
                { key: "netdev", value: netdev, at: 0, valueAt: 0, form: "pair" },
                ...(nic.mac
                  ? [{ key: "mac", value: nic.mac, at: 0, valueAt: 0, form: "pair" as const }]
                  : []),
              ]),
              word: arg!,
              loc: opt.loc,
              src,
            });
          } else {
            this.hubNics.push({ hub, nic, at: this.order.length });
            this.order.push({ pending: -1 - (this.hubNics.length - 1) });
          }
          return;
        }
        const b = this.backend(opts, arg!, null, ["vlan", "name"]);
        if (!b) return this.keep(opt, arg, `-net ${type} is not a backend qnet makes`);
        if (!this.hubs.has(hub)) this.hubs.set(hub, b);
        else this.finding("warning", arg!.loc, `a second backend on hub ${hub}: not imported`);
        return;
      }
      case "-device": {
        const opts = this.opts(arg!, "driver");
        if (!opts) return;
        const driver = opts.get("driver") ?? "";
        if (opts.pairs.some((p) => p.key === "netdev")) {
          this.order.push({ pending: this.devices.length });
          this.devices.push({ opts, word: arg!, loc: opt.loc, src });
          return;
        }
        if (driver === "virtio-serial-pci" || driver === "virtio-serial") {
          this.finding(
            "note",
            arg!.loc,
            "virtio-serial: qnet adds the guest agent's channel itself",
          );
          return;
        }
        if (driver === "virtserialport" && /org\.qemu\.guest_agent/.test(a)) {
          this.finding("note", arg!.loc, "the guest agent channel: qnet adds it itself");
          return;
        }
        this.keep(opt, arg, "a device qnet does not model");
        return;
      }
      case "-global":
        if (/^[A-Za-z0-9_.-]+\.romfile=$/.test(a)) {
          this.finding("note", arg!.loc, `${a}: qnet turns NIC option ROMs off itself`);
          return;
        }
        this.keep(opt, arg, "a global property qnet does not model");
        return;
      default:
        if (QNET_OWN[o]) {
          this.finding("note", opt.loc, `${o}${arg ? ` ${a}` : ""}: ${QNET_OWN[o]}`);
          return;
        }
        this.keep(opt, arg, "an option qnet does not model");
    }
  }

  private defaultModel(): string {
    // QEMU's default NIC: e1000 on pc (QEMU's default machine), e1000e on q35.
    return /^q35|^pc-q35/.test(this.f.machine ?? "") ? "e1000e" : "e1000";
  }

  private disk(file: string, word: ShellWord, _src: string) {
    if (this.f.disk) {
      this.f.args.push("-drive", `file=${file.replaceAll(",", ",,")}`);
      this.finding(
        "warning",
        word.loc,
        `a second disk ${file}: qnet attaches one; kept in qemu.args`,
      );
      return;
    }
    this.f.disk = file;
  }

  private backend(
    opts: Opts,
    word: ShellWord,
    id: string | null,
    extra: string[] = [],
  ): Backend | null {
    const type = opts.get("type");
    const loc = word.loc;
    if (type === "user") {
      return { kind: "user", opts, id, loc, word };
    }
    if (type === "tap") {
      const ifname = opts.get("ifname") ?? null;
      const fd = opts.get("fd") !== undefined;
      const script = opts.get("script");
      const down = opts.get("downscript");
      for (const k of ["vhost", "queues", "vhostforce"]) {
        const v = opts.get(k);
        if (v !== undefined)
          this.finding("note", loc, `${k}=${v}: qnet sets vhost-net and queues itself`);
      }
      if (script !== undefined && script !== "no")
        this.finding(
          "warning",
          loc,
          `script=${script}: qnet attaches taps to their bridge itself; the script is not run`,
        );
      if (script === undefined && !fd)
        this.finding(
          "warning",
          loc,
          "no script=no: QEMU would run /etc/qemu-ifup; qnet attaches taps to their bridge itself",
        );
      if (down !== undefined && down !== "no")
        this.finding("warning", loc, `downscript=${down}: not run (qnet down removes the tap)`);
      this.leftovers(opts, "-netdev tap", loc, extra);
      return { kind: "tap", ifname, fd, scriptSet: script === "no", loc };
    }
    if (type === "bridge") {
      const br = opts.get("br") ?? "br0";
      this.leftovers(opts, "-netdev bridge", loc, extra);
      return { kind: "bridge", bridge: br, loc };
    }
    return null;
  }

  private resolveNics() {
    const used = new Set<string>();
    for (const item of this.order) {
      if ("model" in item) {
        this.f.nics.push(item);
        continue;
      }
      if (item.pending < 0) {
        const h = this.hubNics[-1 - item.pending]!;
        const b = this.hubs.get(h.hub);
        if (!b) {
          this.finding(
            "warning",
            h.nic.loc,
            `-net nic on hub ${h.hub} has no backend: not connected, not imported`,
          );
          continue;
        }
        this.f.nics.push({ ...h.nic, backend: b });
        continue;
      }
      const d = this.devices[item.pending]!;
      const driver = d.opts.get("driver") ?? "";
      const netdev = d.opts.get("netdev")!;
      const b = this.netdevs.get(netdev);
      if (!b) {
        this.finding(
          "error",
          d.loc,
          `-device ${driver} uses netdev ${netdev}, which no -netdev defines`,
        );
        continue;
      }
      if (used.has(netdev))
        this.finding("warning", d.loc, `netdev ${netdev} used by a second device`);
      used.add(netdev);
      const mac = d.opts.get("mac") ?? null;
      d.opts.get("id");
      for (const k of ["mq", "vectors", "romfile"]) d.opts.get(k);
      this.leftovers(d.opts, `-device ${driver}`, d.word.loc);
      this.f.nics.push({
        model: driver,
        modelDefault: false,
        mac,
        backend: b,
        loc: d.loc,
        source: d.src,
      });
    }
    for (const [id, b] of this.netdevs)
      if (!used.has(id))
        this.finding("warning", b.loc, `netdev ${id} is used by no -device: not imported`);
  }
}

/** Parse a hostfwd value `[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`. */
export function parseHostfwd(v: string): {
  proto: "tcp" | "udp";
  hostAddr: string;
  hostPort: number;
  guestAddr: string;
  guestPort: number;
} | null {
  const m = /^(tcp|udp)?:([0-9.]*):(\d{1,5})-([0-9.]*):(\d{1,5})$/.exec(v);
  if (!m) return null;
  const hp = Number(m[3]);
  const gp = Number(m[5]);
  if (hp < 1 || hp > 65535 || gp < 1 || gp > 65535) return null;
  return {
    proto: (m[1] ?? "tcp") as "tcp" | "udp",
    hostAddr: m[2]!,
    hostPort: hp,
    guestAddr: m[4]!,
    guestPort: gp,
  };
}

export { parseQemuOpts };
