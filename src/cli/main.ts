#!/usr/bin/env node
// The qnet command line: flags become options, options become library calls; errors are printed here only.
import { Command, CommanderError } from "commander";
import { EXIT } from "../errors.js";
import { registerCommands } from "./commands.js";
import { reportError } from "./errors.js";
import { RanRootless, registerRootless } from "./rootless.js";

export async function main(argv: string[]): Promise<number> {
  const program = new Command("qnet")
    .description("Declarative QEMU VM networking: one topology file, a few commands.")
    .version("0.1.0")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError("(run with --help for usage)");
  registerCommands(program);
  registerRootless(program);
  try {
    await program.parseAsync(argv, { from: "user" });
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof RanRootless) return e.exitCode;
    if (e instanceof CommanderError) {
      if (
        e.code === "commander.helpDisplayed" ||
        e.code === "commander.version" ||
        e.code === "commander.help"
      )
        return EXIT.ok;
      return EXIT.usage;
    }
    return reportError(e);
  }
}

// A reader that goes away (`qnet plan … | head`) is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
