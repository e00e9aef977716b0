// `qnet ui [LAB|FILE]`: the command line of the web view (flags to options; the server loads on demand).
import { statSync } from "node:fs";
import type { Command } from "commander";
import { examples, readTopology } from "../cli/io.js";
import { EXIT, UserError } from "../errors.js";
import { DEFAULT_STATE_ROOT, labStateDir, listLabs, readLabRecord } from "../host/state.js";

function portNumber(v: string): number {
  const n = Number(v);
  if (!/^\d{1,5}$/.test(v) || n > 65535)
    throw new UserError(
      `--port ${JSON.stringify(v)} is not a port (0-65535)`,
      undefined,
      EXIT.usage,
    );
  return n;
}

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0.1 || n > 3600)
    throw new UserError(
      `--refresh ${JSON.stringify(v)}: give 0.1 to 3600 seconds`,
      undefined,
      EXIT.usage,
    );
  return n;
}

interface UiFlags {
  port: number;
  listen: string;
  stateDir: string;
  refresh: number;
}

export function registerUiCommand(program: Command): void {
  program
    .command("ui")
    .description(
      "serve a live web view of a lab (topology, state, checks, serial consoles), or of every lab, until Ctrl-C",
    )
    .argument(
      "[lab|file]",
      "a lab that is up, or a topology file (drawn without live state); none: the list of labs",
    )
    .option("--port <n>", "TCP port (0: any free port)", portNumber, 0)
    .option(
      "--listen <addr>",
      "address to listen on (anything but loopback exposes the consoles)",
      "127.0.0.1",
    )
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .option(
      "--refresh <seconds>",
      "pause between two status refreshes of a watched lab",
      seconds,
      1,
    )
    .addHelpText(
      "after",
      `${examples(
        "qnet ui lab                      # prints http://127.0.0.1:PORT/?token=…; open it",
        "qnet ui                          # every lab under the state root",
        "qnet ui examples/private-lan.yaml   # a topology file, drawn without running it",
        "ssh -L 8080:127.0.0.1:8080 host qnet ui lab --port 8080   # from another machine",
      )}
The first line on stdout is the URL with its access token; requests without it get 401.
`,
    )
    .action(async (target: string | undefined, o: UiFlags) => {
      const { stateRootFacts, topologyFileFacts } = await import("./lab-facts.js");
      const { startUiServer } = await import("./server.js");
      const { isLoopback } = await import("./auth.js");
      let facts: import("./lab-facts.js").LabFacts;
      let initialLab: string | null = null;
      if (target === undefined) facts = stateRootFacts(o.stateDir);
      else if (isFile(target)) {
        const { lab, warnings } = await readTopology(target);
        for (const w of warnings)
          process.stderr.write(
            `${w.file}:${w.line}:${w.column}: warning: ${w.path}: ${w.message}\n`,
          );
        facts = topologyFileFacts(lab, target);
        initialLab = lab.name;
      } else if (isLabUp(o.stateDir, target)) {
        facts = stateRootFacts(o.stateDir);
        initialLab = target;
      } else {
        const up = listLabs(o.stateDir).map((l) => l.name);
        throw new UserError(
          `no topology file and no lab that is up named "${target}"`,
          `labs that are up: ${up.join(", ") || "none"} (state root ${o.stateDir}); \`qnet ui\` alone lists them`,
          EXIT.usage,
        );
      }
      if (!isLoopback(o.listen))
        process.stderr.write(
          `qnet: warning: --listen ${o.listen} is not a loopback address: anyone who can reach it and holds the URL can type into the VMs' consoles, and HTTP carries the token unencrypted; prefer the default 127.0.0.1 and an SSH tunnel (ssh -L)\n`,
        );
      const server = await startUiServer({
        facts,
        initialLab,
        listen: o.listen,
        port: o.port,
        intervalMs: Math.round(o.refresh * 1000),
        log: (m) => process.stderr.write(`qnet: ${m}\n`),
      });
      process.stdout.write(`${server.url}\n`);
      process.stderr.write(
        `qnet: web view of ${initialLab ? `lab ${initialLab}` : "every lab"} on port ${server.port}; Ctrl-C stops\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          process.stderr.write(`qnet: ${signal}: stopping the web view\n`);
          // A second Ctrl-C does not wait.
          process.once("SIGINT", () => process.exit(130));
          server.close().then(resolve, resolve);
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      // Whatever is still running (a probe of a check) ends with the process.
      setTimeout(() => process.exit(), 2000).unref();
    });
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isLabUp(stateRoot: string, name: string): boolean {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(name)) return false;
  return readLabRecord(labStateDir(stateRoot, name)) !== null;
}
