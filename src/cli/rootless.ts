// Rootless labs on the command line: a normal user's `up` (or `up --rootless`) builds the lab inside
// namespaces of its own, and every command on such a lab runs qnet itself in there (nsenter); `down` and
// `status` also take back, from the host, what lives outside the lab's namespaces.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { EXIT, UserError } from "../errors.js";
import { DEFAULT_STATE_ROOT, labStateDir } from "../host/state.js";
import { isName } from "../model/names.js";
import { insideInfo } from "../rootless/inside.js";
import { isRootlessLab } from "../rootless/record.js";
import { printJson } from "./io.js";

/** Thrown by the dispatcher when it ran the command itself: main returns this exit code. */
export class RanRootless extends Error {
  constructor(readonly exitCode: number) {
    super("ran rootless");
  }
}

const isRoot = () => (process.getuid?.() ?? 0) === 0;
/** The work, loaded only when a command concerns a rootless lab (every other command starts faster). */
const work = () => import("./rootless-run.js");
const isFile = (arg: string) => /\.(ya?ml|json)$/.test(arg);

/** Whether any lab under a state root is rootless (cheap: one directory listing). */
function anyRootlessLab(stateDir: string): boolean {
  try {
    return readdirSync(stateDir).some((n) => isRootlessLab(join(stateDir, n)));
  } catch {
    return false;
  }
}

export function registerRootless(program: Command): void {
  program.hook("preAction", async (_self, action) => {
    const code = await dispatch(action);
    if (code !== null) throw new RanRootless(code);
  });
  program
    .command("rootless-internal", { hidden: true })
    .description("run by qnet inside a rootless lab's namespaces")
    .argument("<op>", "status or down")
    .argument("<lab>", "lab name")
    .option("--state-dir <dir>", "state root", DEFAULT_STATE_ROOT)
    .action(async (op: string, lab: string, o: { stateDir: string }) => {
      if (!insideInfo())
        throw new UserError("rootless-internal runs inside a rootless lab only", undefined, 2);
      const { insideDown, insideStatus } = await import("../rootless/inner.js");
      const dir = labStateDir(o.stateDir, lab);
      if (op === "status") printJson(await insideStatus(dir));
      else if (op === "down") printJson(await insideDown(o.stateDir, lab));
      else throw new UserError(`unknown rootless-internal op ${op}`, undefined, EXIT.usage);
    });
}

/** The command's path below `qnet` ("up", "guest build"). */
function commandPath(c: Command): string {
  const names: string[] = [];
  for (let x: Command | null = c; x?.parent; x = x.parent) names.unshift(x.name());
  return names.join(" ");
}

/** Run the command itself when it concerns a rootless lab (its exit code), or null: run it as usual. */
async function dispatch(action: Command): Promise<number | null> {
  if (insideInfo()) return null;
  const path = commandPath(action);
  const o = action.opts() as Record<string, unknown> & { stateDir?: string };
  const args = action.processedArgs as unknown[];
  const first = typeof args[0] === "string" ? (args[0] as string) : undefined;
  const stateDir = typeof o.stateDir === "string" ? o.stateDir : DEFAULT_STATE_ROOT;
  // A lab named (not a file) whose state is a rootless lab's; for a file, any rootless lab (or a user).
  const concerned = (arg: string | undefined) =>
    !!arg &&
    (isFile(arg)
      ? !isRoot() || anyRootlessLab(stateDir)
      : isName(arg) && isRootlessLab(labStateDir(stateDir, arg)));
  switch (path) {
    case "up":
      return isRoot() && !o.rootless
        ? null
        : (await work()).up(first!, o as Parameters<Awaited<ReturnType<typeof work>>["up"]>[1]);
    case "down":
      return concerned(first)
        ? (await work()).down(first!, o as { stateDir: string; json?: boolean })
        : null;
    case "status":
      return concerned(first)
        ? (await work()).status(first!, o as { stateDir: string; json?: boolean })
        : null;
    case "plan":
      return concerned(first)
        ? (await work()).plan(first!, o as { stateDir: string; netns?: string })
        : null;
    case "rootless-internal":
      return null;
    case "ui":
      if ((first && existsSync(first)) || isRoot()) return null;
      throw new UserError(
        "qnet ui does not show rootless labs yet: it would serve from inside a lab's namespaces, out of your browser's reach",
        "use `qnet status LAB`, `qnet check LAB` and `qnet console LAB VM`; `qnet ui FILE` still draws a topology file",
        EXIT.usage,
      );
  }
  // Commands on a lab that is up: the lab name first, its state root in --state-dir.
  if (!first || typeof o.stateDir !== "string" || !isName(first)) return null;
  if (/^(diagram|export )/.test(path) && existsSync(first)) return null;
  if (!isRootlessLab(labStateDir(o.stateDir, first))) return null;
  const { runGivenInside } = await import("../rootless/enter.js");
  return runGivenInside(o.stateDir, first, process.argv.slice(2));
}
