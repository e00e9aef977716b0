// `qnet check LAB`: the connectivity matrix of a running lab, for people (table) or programs (--json).
import type { Command } from "commander";
import { EXIT } from "../errors.js";
import { DEFAULT_STATE_ROOT } from "../host/state.js";
import { examples, printJson, runningLab } from "./io.js";

export function registerCheckCommands(program: Command): void {
  program
    .command("check")
    .description(
      "prove a running lab's connectivity: VM to VM, VM to gateway, host to VM, each forward, NAT; each failure with its likely cause",
    )
    .argument("<lab>", "lab name")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option("--target <ip>", "also ping this address from every VM on a NAT network")
    .option("--json", "machine-readable report")
    .addHelpText(
      "after",
      `\nExit code 1 when any pair fails.\n${examples("qnet check lab", `qnet check svc --target 192.0.2.1 --json | jq '.pairs[] | select(.status == "fail")'`)}`,
    )
    .action(async (name: string, o: { stateDir: string; target?: string; json?: boolean }) => {
      const { dir } = runningLab(o.stateDir, name);
      const { checkLab } = await import("../lab/check.js");
      const { renderCheckTable } = await import("../lab/check-render.js");
      const report = await checkLab(dir, { target: o.target ?? null });
      if (o.json) printJson(report);
      else process.stdout.write(renderCheckTable(report));
      if (!report.ok) process.exitCode = EXIT.failure;
    });
}
