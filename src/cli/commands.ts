// Every qnet command: its flags, help with an example, and the library call it makes.
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { EXIT, formatArgv, formatDiagnostic, UserError } from "../errors.js";
import {
  DEFAULT_STATE_ROOT,
  labStateDir,
  listLabs,
  readLabRecord,
  recordNetns,
} from "../host/state.js";
import type { Compiled } from "../load/compile.js";
import { isName } from "../model/names.js";
import { registerUiCommand } from "../ui/command.js";
import { registerImageCommands } from "./image-commands.js";
import { examples, printJson, readTopology } from "./io.js";
import { registerLabCommands } from "./lab-commands.js";
import { registerLinkCommands } from "./link-commands.js";
import { registerPortCommands } from "./port-commands.js";
import { registerSshCommands } from "./ssh-commands.js";

/** `qnet plan` options (a named type keeps the action on one line). */
type PlanOptions = {
  json?: boolean;
  stateDir: string;
  netns?: string;
  host?: string;
  cold?: boolean;
};

function warn(warnings: Compiled["warnings"], json: boolean) {
  if (!json) for (const w of warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
}

export function registerCommands(program: Command): void {
  registerFileCommands(program);
  registerLabCommands(program);
  registerLinkCommands(program);
  registerDoctor(program);
  registerPortCommands(program);
  registerSshCommands(program);
  registerUiCommand(program);
  registerImageCommands(program);
}

function registerFileCommands(program: Command): void {
  program
    .command("validate")
    .description("check a topology file; every error is reported with file:line:column")
    .argument("<file>", "topology file (YAML or JSON)")
    .option("--json", "print the resolved lab as JSON")
    .addHelpText("after", examples("qnet validate examples/private-lan.yaml"))
    .action(async (file: string, o: { json?: boolean }) => {
      const { lab, warnings } = await readTopology(file);
      warn(warnings, !!o.json);
      if (o.json) printJson({ valid: true, lab, warnings });
      else
        process.stdout.write(
          `${file}: valid (${lab.networks.length} networks, ${lab.vms.length} VMs)\n`,
        );
    });

  program
    .command("plan")
    .description("show the resolved lab, the host changes and the QEMU command line of every VM")
    .argument("<file>", "topology file")
    .option("--json", "machine-readable output")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("--netns <name>", "plan against this network namespace (as `up --netns` would run)")
    .option(
      "--host <name>",
      "multi-host labs: this host's part (default: the host whose underlay address is local)",
    )
    .option("--cold", "as `up --cold` would: every VM booted, none from a template")
    .addHelpText(
      "after",
      examples(
        "qnet plan examples/private-lan.yaml",
        "qnet plan lab.yaml --json | jq '.vms[0].argv'",
      ),
    )
    .action(async (file: string, o: PlanOptions) => {
      const compiled = await readTopology(file);
      warn(compiled.warnings, !!o.json);
      const { partFor } = await import("../lab/host-part.js");
      const lab = await partFor(compiled.lab, {
        host: o.host,
        netns: o.netns ?? compiled.lab.netns,
      });
      const { detectFacts } = await import("../host/facts.js");
      const { hostChanges, planView, renderPlanText } = await import("../lab/plan-view.js");
      const netns = o.netns ?? lab.netns;
      const stateDir = labStateDir(o.stateDir, lab.name);
      const facts = detectFacts();
      const { changes, notes } = await hostChanges(lab, {
        stateDir,
        netns,
        facts,
        cold: !!o.cold,
      });
      const view = planView(lab, facts, stateDir, changes, notes);
      if (o.json) printJson(view);
      else process.stdout.write(renderPlanText(view));
    });

  program
    .command("args")
    .description(
      "print the -netdev/-device arguments of one VM, for people who start QEMU themselves",
    )
    .argument("<file>", "topology file")
    .argument("<vm>", "VM name")
    .option("--shell", "one line, quoted for pasting into a shell")
    .option("--json", "a JSON array")
    .option(
      "--vhost <on|off>",
      "override the vhost-net detection (default: on when /dev/vhost-net is usable)",
    )
    .addHelpText(
      "after",
      examples(
        "qnet args examples/private-lan.yaml vm0",
        "qemu-system-x86_64 ... $(qnet args lab.yaml vm0 --shell)",
      ),
    )
    .action(
      async (
        file: string,
        vmName: string,
        o: { shell?: boolean; json?: boolean; vhost?: string },
      ) => {
        const { detectFacts } = await import("../host/facts.js");
        const { networkArgs } = await import("../render/qemu-args.js");
        const { lab, warnings } = await readTopology(file);
        warn(warnings, !!o.json);
        const vm = lab.vms.find((v) => v.name === vmName);
        if (!vm) {
          throw new UserError(
            `no VM named "${vmName}" in ${file}`,
            `VMs: ${lab.vms.map((v) => v.name).join(", ")}`,
            EXIT.usage,
          );
        }
        const facts = detectFacts();
        if (o.vhost !== undefined) {
          if (o.vhost !== "on" && o.vhost !== "off")
            throw new UserError("--vhost takes on or off", undefined, EXIT.usage);
          facts.vhost = o.vhost === "on";
        }
        const argv = networkArgs(lab, vm, facts);
        if (o.json) printJson(argv);
        else if (o.shell) process.stdout.write(`${formatArgv(argv)}\n`);
        else {
          const lines: string[] = [];
          for (let i = 0; i < argv.length; i += 2) lines.push(`${argv[i]} ${argv[i + 1]}`);
          process.stdout.write(`${lines.join("\n")}\n`);
        }
      },
    );

  program
    .command("diagram")
    .description(
      "draw the topology (ASCII by default, or Mermaid or Graphviz DOT); for a lab that is up, with its live state",
    )
    .argument(
      "<file|lab>",
      "topology file, or the name of a lab that is up (shows VMs up/down and their addresses)",
    )
    .option("--format <format>", "ascii, mermaid or dot", "ascii")
    .option("--state-dir <dir>", "state root (for a lab name)", DEFAULT_STATE_ROOT)
    .addHelpText(
      "after",
      examples(
        "qnet diagram examples/private-lan.yaml",
        "qnet diagram lab   # a running lab: [up 10.0.2.2/24] or [down] per VM",
        "qnet diagram lab.yaml --format dot | dot -Tpng > lab.png",
      ),
    )
    .action(async (file: string, o: { format: string; stateDir: string }) => {
      const { renderAscii, renderDot, renderMermaid } = await import("../render/diagram.js");
      const render = { ascii: renderAscii, mermaid: renderMermaid, dot: renderDot }[o.format];
      if (!render)
        throw new UserError(
          `unknown format "${o.format}"`,
          "use ascii, mermaid or dot",
          EXIT.usage,
        );
      const running = existsSync(file) ? null : runningLabRecord(o.stateDir, file);
      if (running) {
        const { readLiveLab, toDiagramState } = await import("../lab/live.js");
        const live = await readLiveLab(running.dir, running.record.lab);
        // `up --netns` puts a lab in a namespace its file does not name: show where it runs.
        const { withLiveImpairments } = await import("../model/impair-live.js");
        const { readLiveImpairments } = await import("../host/impair-live.js");
        const lab = {
          ...withLiveImpairments(running.record.lab, readLiveImpairments(running.dir)),
          netns: recordNetns(running.record),
        };
        process.stdout.write(render(lab, toDiagramState(live)));
        return;
      }
      if (!existsSync(file) && !/[./]/.test(file))
        throw new UserError(
          `no topology file and no lab that is up named "${file}"`,
          `labs that are up: ${
            listLabs(o.stateDir)
              .map((l) => l.name)
              .join(", ") || "none"
          } (state root ${o.stateDir})`,
          EXIT.usage,
        );
      const { lab, warnings } = await readTopology(file);
      warn(warnings, false);
      process.stdout.write(render(lab));
    });
}

/** The record of a lab that is up under `stateRoot`, or null (not a lab name, or not up). */
function runningLabRecord(stateRoot: string, name: string) {
  if (!isName(name)) return null;
  const dir = labStateDir(stateRoot, name);
  const record = readLabRecord(dir);
  return record ? { dir, record } : null;
}

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description("diagnose the host for QEMU networking: each check with its meaning and exact fix")
    .argument(
      "[file]",
      "topology file: also check what this lab needs (ports, subnets, bridges, NIC models)",
    )
    .option(
      "--fix",
      "apply the safe fixes and say what changed; install missing packages with apt-get (asks once)",
    )
    .option("--yes", "with --fix: install missing packages without asking")
    .option("--json", "machine-readable report")
    .option("--netns <name>", "diagnose inside this network namespace")
    .addHelpText(
      "after",
      examples(
        "qnet doctor",
        "qnet doctor --fix            # on a fresh Debian or Ubuntu: installs what qnet runs",
        "qnet doctor examples/services.yaml --fix",
        "qnet doctor lab.yaml --netns lab --json",
      ),
    )
    .action(
      async (
        file: string | undefined,
        o: { fix?: boolean; yes?: boolean; json?: boolean; netns?: string },
      ) => {
        const lab = file ? (await readTopology(file)).lab : undefined;
        const { exitCodeFor, renderDoctorTable, runDoctor } = await import("../doctor/index.js");
        const { ProcessRunner } = await import("../host/runner.js");
        const report = await runDoctor({
          ...(lab ? { lab } : {}),
          runner: new ProcessRunner(o.netns ?? lab?.netns ?? null),
          fix: !!o.fix,
          confirm: async (question) => {
            if (o.yes) return true;
            if (!process.stdin.isTTY) {
              process.stderr.write(`qnet: ${question} Not asked (no terminal): add --yes\n`);
              return false;
            }
            return askYesNo(question);
          },
        });
        if (o.json) printJson(report);
        else process.stdout.write(renderDoctorTable(report));
        process.exitCode = exitCodeFor(report);
      },
    );
}

/** One question on the terminal; yes only for y or yes. */
async function askYesNo(question: string): Promise<boolean> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}
