// `qnet check LAB`: the connectivity matrix of a running lab, for people (table) or programs (--json).
import type { Command } from "commander";
import { EXIT, UserError } from "../errors.js";
import { DEFAULT_STATE_ROOT, labStateDir, listLabs, readLabRecord } from "../host/state.js";
import { checkLab } from "../lab/check.js";
import { renderCheckTable } from "../lab/check-render.js";
import { printJson } from "./io.js";

/** The state directory of a lab that is up, or a usage error naming the labs that are. */
export function upLabDir(stateRoot: string, name: string): string {
  const dir = labStateDir(stateRoot, name);
  if (!readLabRecord(dir)) {
    const known = listLabs(stateRoot).map((l) => l.name);
    throw new UserError(
      `no lab named "${name}" is up`,
      known.length ? `known labs: ${known.join(", ")}` : "start one with `qnet up FILE`",
      EXIT.usage,
    );
  }
  return dir;
}

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
      `\nExit code 1 when any pair fails.\n\nExamples:\n  $ qnet check lab\n  $ qnet check svc --target 192.0.2.1 --json | jq '.pairs[] | select(.status == "fail")'\n`,
    )
    .action(async (name: string, o: { stateDir: string; target?: string; json?: boolean }) => {
      const dir = upLabDir(o.stateDir, name);
      const report = await checkLab(dir, { target: o.target ?? null });
      if (o.json) printJson(report);
      else process.stdout.write(renderCheckTable(report));
      if (!report.ok) process.exitCode = EXIT.failure;
    });
}
