// Commands on running labs: up, down, status, exec, console, confirm, and building the built-in guest.
import type { Command } from "commander";
import { EXIT, UserError } from "../errors.js";
import { DEFAULT_STATE_ROOT, listLabs } from "../host/state.js";
import { registerCheckCommands } from "./check-commands.js";
import { examples, printJson, readTopology, runningLab } from "./io.js";

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new UserError(`"${v}" is not a number of seconds`, undefined, EXIT.usage);
  return n;
}

/** `qnet status` options (a named type keeps the action on one line). */
type StatusOptions = { stateDir: string; host?: string; json?: boolean };

/** Progress lines go to stderr, so stdout stays clean for --json. */
const progressTo = (quiet: boolean) => (msg: string) => {
  if (!quiet) process.stderr.write(`qnet: ${msg}\n`);
};

export function registerLabCommands(program: Command): void {
  program
    .command("up")
    .description(
      "build the host side of a lab (bridges, taps, DHCP/DNS, NAT, forwards), boot its VMs and wait until they answer",
    )
    .argument("<file>", "topology file")
    .option(
      "--netns <name>",
      "run the whole lab inside this network namespace (created if missing)",
    )
    .option(
      "--host <name>",
      "multi-host labs: this host's part (default: the host whose underlay address is local)",
    )
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("--rootless", "as root: build the lab in namespaces of its own, as a normal user's is")
    .option("--no-vms", "bring up only the network; start QEMU yourself with `qnet args`")
    .option(
      "--cold",
      "boot every VM cold instead of restoring the built-in guest from a template (also QNET_BOOT=cold)",
    )
    .option("--wait <seconds>", "time to wait for every guest agent", seconds, 120)
    .option(
      "--keep-on-failure",
      "keep what was made when a step fails (default: roll this run back)",
    )
    .option(
      "--confirm <seconds>",
      "bridged networks: revert the uplink move unless `qnet confirm LAB` runs in time",
      seconds,
    )
    .option("--json", "print the result as JSON")
    .option("--timings", "print how long each phase took (on stderr; in the JSON with --json)")
    .option("-q, --quiet", "no progress lines")
    .addHelpText(
      "after",
      examples(
        "qnet up examples/private-lan.yaml",
        "qnet up examples/private-lan.yaml --netns lab   # sandboxed in a namespace",
        "qnet up lab.yaml --no-vms && qemu-system-x86_64 ... $(qnet args lab.yaml vm0 --shell)",
        "qnet up docs/multi-host.yaml --host h1   # this host's part of a multi-host lab",
      ),
    )
    .action(
      async (
        file: string,
        o: {
          netns?: string;
          host?: string;
          stateDir: string;
          vms: boolean;
          cold?: boolean;
          wait: number;
          keepOnFailure?: boolean;
          confirm?: number;
          json?: boolean;
          quiet?: boolean;
          timings?: boolean;
        },
      ) => {
        const compiled = await readTopology(file);
        const { checkRecordedHost, partFor } = await import("../lab/host-part.js");
        const lab = await partFor(compiled.lab, {
          host: o.host,
          netns: o.netns ?? compiled.lab.netns,
        });
        if (lab.part) checkRecordedHost(o.stateDir, lab.name, lab.part.host);
        const warnings = compiled.warnings;
        const progress = progressTo(!!o.json || !!o.quiet);
        for (const w of warnings)
          progress(`${w.file}:${w.line}:${w.column}: warning: ${w.path}: ${w.message}`);
        let confirmation: Promise<unknown> | undefined;
        if (o.confirm !== undefined) {
          // Like `netplan try`: the revert must happen even if the terminal (an SSH session) dies.
          process.on("SIGHUP", () => {});
          process.stderr.on("error", () => {});
          process.stdout.on("error", () => {});
          if (process.stdin.isTTY) {
            confirmation = new Promise((resolve) => process.stdin.once("data", resolve));
          }
        }
        const { up } = await import("../lab/up.js");
        const r = await (async () => {
          try {
            return await up(lab, {
              stateRoot: o.stateDir,
              netns: o.netns ?? null,
              noVms: !o.vms,
              cold: !!o.cold,
              waitSeconds: o.wait,
              keepOnFailure: !!o.keepOnFailure,
              ...(o.confirm !== undefined ? { confirmSeconds: o.confirm } : {}),
              ...(confirmation ? { confirmation } : {}),
              file,
              progress,
              timings: !!o.timings,
            });
          } finally {
            // Stop listening for Enter, or stdin would keep the process alive.
            if (confirmation) process.stdin.destroy();
          }
        })();
        if (o.timings && !o.json) {
          const total = (r.timings ?? []).reduce((n, t) => n + t.ms, 0);
          for (const t of r.timings ?? [])
            process.stderr.write(`qnet: timing: ${String(t.ms).padStart(6)} ms  ${t.phase}\n`);
          process.stderr.write(
            `qnet: timing: ${String(total).padStart(6)} ms  in all (after start-up)\n`,
          );
        }
        if (o.json) printJson(r);
        else if (r.changes.length === 0)
          process.stdout.write(`lab ${r.lab} is up; nothing to change\n`);
        else
          process.stdout.write(
            `lab ${r.lab} is up (${r.changes.length} changes):\n${r.changes.map((c) => `  + ${c}\n`).join("")}`,
          );
      },
    );

  program
    .command("down")
    .description(
      "remove everything qnet made for a lab (works without the topology file, and after a crash)",
    )
    .argument("<lab>", "lab name (or the topology file it came from)")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("--host <name>", "multi-host labs: make sure the part that is up is this host's")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      examples(
        "qnet down lab",
        "qnet down examples/private-lan.yaml",
        "qnet down docs/multi-host.yaml --host h2   # only this host's part; the others keep working",
      ),
    )
    .action(async (name: string, o: { stateDir: string; host?: string; json?: boolean }) => {
      const labName = /\.(ya?ml|json)$/.test(name) ? (await readTopology(name)).lab.name : name;
      const { checkRecordedHost } = await import("../lab/host-part.js");
      checkRecordedHost(o.stateDir, labName, o.host);
      const { down } = await import("../lab/down.js");
      const r = await down(labName, { stateRoot: o.stateDir });
      if (o.json) printJson(r);
      else {
        process.stdout.write(`lab ${r.lab}: removed ${r.undone.length} object(s)\n`);
        for (const e of r.errors) process.stderr.write(`qnet: ${e}\n`);
      }
      if (r.errors.length) process.exitCode = EXIT.failure;
    });

  program
    .command("status")
    .description("the labs qnet knows; for one lab each object: present, missing or drifted")
    .argument("[lab]", "lab name")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("--host <name>", "multi-host labs: make sure the part that is up is this host's")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      examples(
        "qnet status",
        "qnet status lab --json",
        "qnet status lab --host h1   # and its peers' VTEPs",
      ),
    )
    .action(async (name: string | undefined, o: StatusOptions) => {
      if (!name) {
        const { netnsExists } = await import("../host/netns.js");
        const { ROOTLESS_SAY, withRootlessLabs } = await import("../rootless/listing.js");
        const own = listLabs(o.stateDir).map((l) => ({
          ...l,
          state: !l.complete
            ? "incomplete"
            : l.netns && !netnsExists(l.netns)
              ? "namespace-gone"
              : "up",
        }));
        const labs = await withRootlessLabs(o.stateDir, own);
        const say = {
          up: "up",
          incomplete: "incomplete (run qnet down)",
          "namespace-gone": "namespace gone (run qnet down)",
          ...ROOTLESS_SAY,
        };
        if (o.json) printJson(labs);
        else if (labs.length === 0) process.stdout.write("no lab is up\n");
        else
          for (const l of labs)
            process.stdout.write(
              `${l.owner ? `${l.owner}:` : ""}${l.name}\t${say[l.state as keyof typeof say] ?? l.state}${l.netns ? `\tnetns ${l.netns}` : ""}\t${l.file ?? ""}\n`,
            );
        return;
      }
      const { dir, record } = runningLab(o.stateDir, name);
      const { checkRecordedHost } = await import("../lab/host-part.js");
      checkRecordedHost(o.stateDir, name, o.host);
      const { fullStatus, renderStatusTable } = await import("../lab/status.js");
      const { peerStatus, renderPeers } = await import("../lab/peers.js");
      const [s, peers] = await Promise.all([fullStatus(dir), peerStatus(record)]);
      if (o.json) printJson(peers ? { ...s, peers } : s);
      else process.stdout.write(renderStatusTable(s) + (peers ? renderPeers(peers) : ""));
      if (!s.ok) process.exitCode = EXIT.failure;
    });

  program
    .command("exec")
    .description(
      "run a command inside a VM through its guest agent; exits with the command's exit code",
    )
    .argument("<lab>", "lab name")
    .argument("<vm>", "VM name")
    .argument("<command...>", "command and arguments (put -- before them)")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("--timeout <seconds>", "time for the command to finish", seconds, 120)
    .addHelpText(
      "after",
      examples("qnet exec lab vm0 -- ping -c1 10.0.2.3", "qnet exec lab vm1 -- ip addr"),
    )
    .action(
      async (
        name: string,
        vm: string,
        command: string[],
        o: { stateDir: string; timeout: number },
      ) => {
        const { dir, record } = runningLab(o.stateDir, name);
        const { execInVm } = await import("../lab/access.js");
        const r = await execInVm(dir, record.lab, vm, command, { timeoutMs: o.timeout * 1000 });
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
        process.exitCode = r.exitCode;
      },
    );

  program
    .command("console")
    .description("attach to a VM's serial console (Ctrl-] detaches)")
    .argument("<lab>", "lab name")
    .argument("<vm>", "VM name")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .addHelpText("after", examples("qnet console lab vm0"))
    .action(async (name: string, vm: string, o: { stateDir: string }) => {
      const { dir, record } = runningLab(o.stateDir, name);
      const { attachConsole } = await import("../lab/access.js");
      await attachConsole(dir, record.lab, vm);
    });

  program
    .command("confirm")
    .description("keep a LAN uplink move started with `qnet up --confirm SECONDS`")
    .argument("<lab>", "lab name")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .action(async (name: string, o: { stateDir: string }) => {
      const { dir } = runningLab(o.stateDir, name);
      const { confirmLab } = await import("../host/uplink.js");
      confirmLab(dir);
      process.stdout.write(`lab ${name}: change confirmed\n`);
    });

  const guest = program
    .command("guest")
    .description("the built-in guest (kernel + initramfs made from this host)");
  guest
    .command("build")
    .description("build (or find in the cache) the built-in guest for the given NIC models")
    .option("--kernel <path>", "kernel image (default: newest /boot/vmlinuz-* with modules)")
    .option("--modules <dir>", "modules tree of that kernel")
    .option("--model <model...>", "NIC models the guest must drive", ["virtio-net-pci"])
    .option("--json", "print paths as JSON")
    .addHelpText(
      "after",
      examples("qnet guest build", "qnet guest build --model e1000 virtio-net-pci"),
    )
    .action(async (o: { kernel?: string; modules?: string; model: string[]; json?: boolean }) => {
      const { buildGuest } = await import("../guest/build.js");
      const g = await buildGuest({
        nicModels: o.model,
        ...(o.kernel ? { kernel: o.kernel } : {}),
        ...(o.modules ? { modules: o.modules } : {}),
        onProgress: progressTo(!!o.json),
      });
      if (o.json) printJson(g);
      else
        process.stdout.write(
          `kernel: ${g.kernel}\ninitrd: ${g.initrd}\n${g.cached ? "(from the cache)" : "(built)"}\n`,
        );
    });
  registerCheckCommands(program);
}
