// `qnet check LAB`: the connectivity matrix of a running lab, for people (table) or programs (--json).
import type { Command } from "commander";
import { EXIT, UserError } from "../errors.js";
import { DEFAULT_STATE_ROOT } from "../host/state.js";
import { examples, printJson, runningLab } from "./io.js";

/** `qnet check` options (a named type keeps the action on one line). */
type CheckOptions = { stateDir: string; target?: string; part: string[]; json?: boolean };

export function registerCheckCommands(program: Command): void {
  program
    .command("check")
    .description(
      "prove a running lab's connectivity: VM to VM, VM to gateway, host to VM, each forward, NAT; each failure with its likely cause",
    )
    .argument("<lab>", "lab name")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("--target <ip>", "also ping this address from every VM on a NAT network")
    .option(
      "--part <state-root>",
      "multi-host labs: the state root of another host's part this machine can reach (repeat it); its VMs' pairs across hosts are checked too",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option("--json", "machine-readable report")
    .addHelpText(
      "after",
      `\nExit code 1 when any pair fails.\n${examples("qnet check lab", "qnet check span --part /run/qnet-h2 --part /run/qnet-h3   # every host's part, across hosts", `qnet check svc --target 192.0.2.1 --json | jq '.pairs[] | select(.status == "fail")'`)}`,
    )
    .action(async (name: string, o: CheckOptions) => {
      const { dir, record } = runningLab(o.stateDir, name);
      const { checkLab } = await import("../lab/check.js");
      const { renderCheckTable } = await import("../lab/check-render.js");
      const target = { target: o.target ?? null };
      let report: Awaited<ReturnType<typeof checkLab>>;
      if (record.lab.part) {
        // A part of a multi-host lab: its own pairs, and every pair across hosts it can reach.
        const { checkHosts } = await import("../lab/check-hosts.js");
        report = await checkHosts([dir, ...o.part.map((r) => runningLab(r, name).dir)], target);
      } else if (o.part.length > 0)
        throw new UserError(`--part: lab ${name} does not span hosts`, undefined, EXIT.usage);
      else report = await checkLab(dir, target);
      if (o.json) printJson(report);
      else process.stdout.write(renderCheckTable(report));
      if (!report.ok) process.exitCode = EXIT.failure;
    });
}
