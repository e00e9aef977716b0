// qnet import and qnet export (shell, libvirt): bring labs in from scripts and QEMU lines, take them elsewhere.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { EXIT, formatDiagnostic, UserError } from "../errors.js";
import { DEFAULT_STATE_ROOT, labStateDir } from "../host/state.js";
import type { Lab } from "../model/lab.js";
import { examples, printJson, readTopology, runningLab } from "./io.js";

/** A topology file, or the name of a lab that is up (its recorded lab and state directory). */
async function labOf(
  arg: string,
  stateRoot: string,
): Promise<{ lab: Lab; stateDir: string; source: string }> {
  if (existsSync(arg) || /[./]/.test(arg)) {
    const { lab, warnings } = await readTopology(arg);
    for (const w of warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
    return { lab, stateDir: labStateDir(stateRoot, lab.name), source: arg };
  }
  const { dir, record } = runningLab(stateRoot, arg);
  return { lab: record.lab, stateDir: dir, source: `lab ${arg}, up` };
}

/** The exports describe one host: a lab over several (VXLAN between hosts) is refused, not flattened. */
function singleHost<T extends { lab: Lab }>(l: T): T {
  if (l.lab.hosts || l.lab.part)
    throw new UserError(
      `lab ${l.lab.name} spans hosts (\`hosts:\`): the export describes one host, without the VXLAN between them`,
      "export a single-host lab; `qnet plan FILE --host NAME` shows one host's part",
      EXIT.usage,
    );
  return l;
}

function readInput(file: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    throw new UserError(
      `cannot read ${file === "-" ? "standard input" : file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`,
      undefined,
      EXIT.usage,
    );
  }
}

function refuseOverwrite(path: string, force: boolean | undefined) {
  if (existsSync(path) && !force)
    throw new UserError(`${path} exists`, "pass --force to overwrite it", EXIT.usage);
}

export function registerPortCommands(program: Command): void {
  program
    .command("import")
    .description(
      "turn a shell script or pasted QEMU command lines (ip, brctl, ifconfig, nmcli lines too) into a commented topology file",
    )
    .argument("[file]", "the script, or - for standard input", "-")
    .option("-o, --output <file>", "write the topology here instead of standard output")
    .option(
      "--name <lab>",
      "the lab's name (default: qnet's own -name, else the script's file name)",
    )
    .option("--force", "overwrite --output if it exists")
    .option("--json", "print the topology and every finding as JSON")
    .addHelpText(
      "after",
      examples(
        "qnet import setup.sh -o lab.yaml",
        "qnet import - --name web   # then paste: -netdev user,id=n0,hostfwd=tcp::2222-:22 -device e1000,netdev=n0",
        "qnet export shell lab.yaml | qnet import - --name lab   # the round trip",
      ),
    )
    .action(
      async (
        file: string,
        o: { output?: string; name?: string; force?: boolean; json?: boolean },
      ) => {
        const text = readInput(file);
        if (o.output) refuseOverwrite(o.output, o.force);
        const { importScript, ImportError } = await import("../import/index.js");
        const { formatFinding } = await import("../import/located.js");
        const shown = file === "-" ? "<stdin>" : file;
        let r: Awaited<ReturnType<typeof importScript>>;
        try {
          r = await importScript(text, shown, o.name ? { name: o.name } : {});
        } catch (e) {
          if (e instanceof ImportError)
            throw new UserError(
              `cannot import ${shown}:\n${e.message}`,
              "fix the lines above; nothing was written",
              EXIT.invalid,
            );
          throw e;
        }
        if (o.json) {
          printJson({ topology: r.topology, findings: r.findings });
        } else {
          for (const f of r.findings)
            if (f.severity !== "note") process.stderr.write(`${formatFinding(shown, f)}\n`);
          if (o.output) {
            writeFileSync(o.output, r.yaml);
            process.stderr.write(
              `qnet: wrote ${o.output} (${Object.keys(r.topology.networks).length} networks, ${Object.keys(r.topology.vms).length} VMs); check it with \`qnet plan ${o.output}\`\n`,
            );
          } else process.stdout.write(r.yaml);
        }
      },
    );

  const exp = program
    .command("export")
    .description("take a lab elsewhere: as a plain shell script, or as libvirt XML")
    .addHelpText(
      "after",
      examples(
        "qnet export shell examples/services.yaml > services.sh",
        "qnet export libvirt examples/private-lan.yaml -o lab-xml",
      ),
    );

  exp
    .command("shell")
    .description(
      "print the plain commands of a lab (ip, dnsmasq, nft, QEMU) as a commented script, for learning or for hosts without qnet",
    )
    .argument("<file|lab>", "topology file, or the name of a lab that is up")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("-o, --output <file>", "write the script here instead of standard output")
    .option("--force", "overwrite --output if it exists")
    .addHelpText(
      "after",
      examples(
        "qnet export shell examples/private-lan.yaml",
        "qnet export shell lab -o lab.sh   # a lab that is up",
      ),
    )
    .action(async (arg: string, o: { stateDir: string; output?: string; force?: boolean }) => {
      const { lab, stateDir, source } = singleHost(await labOf(arg, o.stateDir));
      const { renderShellScript } = await import("../export/shell.js");
      const { detectFacts } = await import("../host/facts.js");
      const text = renderShellScript(lab, { stateDir, source, facts: detectFacts() });
      if (o.output) {
        refuseOverwrite(o.output, o.force);
        writeFileSync(o.output, text, { mode: 0o755 });
        process.stderr.write(`qnet: wrote ${o.output}\n`);
      } else process.stdout.write(text);
    });

  exp
    .command("libvirt")
    .description(
      "write libvirt XML: a network per qnet network, a domain per VM, and virsh.sh to define and start them",
    )
    .argument("<file|lab>", "topology file, or the name of a lab that is up")
    .option("-o, --output <dir>", "directory for the files (default: ./<lab>-libvirt)")
    .option(
      "--boot-dir <dir>",
      "copy the built-in guest's kernel and initrd here (libvirt's QEMU user must read them), e.g. /var/lib/libvirt/boot",
    )
    .option("--state-dir <dir>", "state root (for a lab name)", DEFAULT_STATE_ROOT)
    .option("--json", "print the files written as JSON")
    .addHelpText(
      "after",
      examples(
        "qnet export libvirt examples/private-lan.yaml -o lab-xml --boot-dir /var/lib/libvirt/boot",
        "sh lab-xml/virsh.sh   # virsh net-define, net-start, define, start",
      ),
    )
    .action(
      async (
        arg: string,
        o: { output?: string; bootDir?: string; stateDir: string; json?: boolean },
      ) => {
        const { lab, source } = singleHost(await labOf(arg, o.stateDir));
        const { renderLibvirt } = await import("../export/libvirt.js");
        const { detectFacts } = await import("../host/facts.js");
        let builtin: { kernel: string; initrd: string } | null = null;
        const builtinVms = lab.vms.filter((v) => v.guest.kind === "builtin");
        if (builtinVms.length) {
          const { buildGuest } = await import("../guest/build.js");
          const models = [...new Set(builtinVms.flatMap((v) => v.nics.map((n) => n.model)))];
          const g = await buildGuest({
            nicModels: models,
            onProgress: (m) => process.stderr.write(`qnet: ${m}\n`),
          });
          builtin = { kernel: g.kernel, initrd: g.initrd };
          if (o.bootDir) {
            mkdirSync(o.bootDir, { recursive: true });
            const k = join(resolve(o.bootDir), `qnet-${lab.name}-vmlinux`);
            const i = join(resolve(o.bootDir), `qnet-${lab.name}-initrd.img`);
            copyFileSync(g.kernel, k);
            copyFileSync(g.initrd, i);
            builtin = { kernel: k, initrd: i };
          }
        }
        const dir = o.output ?? `${lab.name}-libvirt`;
        mkdirSync(dir, { recursive: true });
        const files = renderLibvirt(lab, { source, facts: { kvm: detectFacts().kvm }, builtin });
        for (const f of files)
          writeFileSync(join(dir, f.name), f.content, {
            mode: f.name.endsWith(".sh") ? 0o755 : 0o644,
          });
        if (o.json) printJson({ dir, files: files.map((f) => join(dir, f.name)), builtin });
        else process.stdout.write(`${files.map((f) => join(dir, f.name)).join("\n")}\n`);
      },
    );
}
