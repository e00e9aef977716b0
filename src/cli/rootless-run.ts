// Rootless labs on the command line, the work (loaded only for a rootless lab): `up` starts the holder and
// helper and runs qnet inside; `down` and `status` take back and report, from the host, what lives outside.
import { readFileSync } from "node:fs";
import { EXIT, UserError, ValidationError } from "../errors.js";
import { mkdirPrivate } from "../host/files.js";
import { labStateDir } from "../host/state.js";
import { rootlessLab, rootlessRefusals } from "../kinds/rootless.js";
import { formatPath } from "../load/parse.js";
import type { Lab } from "../model/lab.js";
import { isName } from "../model/names.js";
import { HELPER_IFNAME, helperReason } from "../render/rootless-helper.js";
import {
  type InsideRun,
  insideInfoOf,
  lockRootlessLab,
  prepareRootlessLab,
  rootlessState,
  runQnetInside,
  teardownRootless,
} from "../rootless/lab.js";
import { cleanUpGone } from "../rootless/listing.js";
import { isRootlessLab } from "../rootless/record.js";
import { ensurePrivateRoot } from "../rootless/state-root.js";
import { printJson, readTopology } from "./io.js";

const isRoot = () => (process.getuid?.() ?? 0) === 0;
const stderr = (quiet: boolean) => (msg: string) => {
  if (!quiet) process.stderr.write(`qnet: ${msg}\n`);
};
/** The command line as given (run again inside the lab's namespaces). */
const givenArgs = () => process.argv.slice(2);

export type UpFlags = {
  stateDir: string;
  netns?: string;
  host?: string;
  json?: boolean;
  quiet?: boolean;
  keepOnFailure?: boolean;
  timings?: boolean;
};

export async function up(file: string, o: UpFlags): Promise<number> {
  if (o.netns)
    throw new UserError(
      "--netns does not apply to a rootless lab: it gets namespaces of its own",
      "leave out --netns",
      EXIT.usage,
    );
  if (o.host)
    throw new UserError("a multi-host lab cannot run rootless", "run it as root", EXIT.usage);
  const progress = stderr(!!o.json || !!o.quiet);
  const { lab, notes } = rootlessLab((await readTopology(file)).lab);
  await refuseLocated(file, lab);
  for (const n of notes) progress(n);
  if (isRoot()) mkdirPrivate(o.stateDir);
  else ensurePrivateRoot(o.stateDir);
  const lock = await lockRootlessLab(o.stateDir, lab.name);
  try {
    const t0 = performance.now();
    const prep = await prepareRootlessLab(lab, o.stateDir, progress);
    for (const n of prep.notes) progress(n);
    if (o.timings && !o.json)
      progress(
        `timing: ${String(Math.round(performance.now() - t0)).padStart(6)} ms  rootless: holder and helper`,
      );
    const run = await runQnetInside(
      prep.holderPid,
      givenArgs(),
      insideInfoOf(o.stateDir, prep.helper),
    );
    // Killed: a crash, as far as the lab is concerned; `qnet down` takes back what was made.
    if (run.signal) return run.code;
    if (run.code !== 0 && prep.fresh && !o.keepOnFailure) {
      progress("rootless: taking the lab's namespaces back (this was its first `up`)");
      const r = await teardownRootless(prep.dir);
      for (const e of r.errors) progress(`rollback: ${e}`);
    }
    return run.code;
  } finally {
    lock.release();
  }
}

/**
 * Refuse, before anything is made, a lab with objects only root can have (kinds/rootless.ts decides
 * which): each at the field of the file that asks for it, with the reason and the alternative.
 */
async function refuseLocated(file: string, lab: Lab): Promise<void> {
  const refusals = rootlessRefusals(lab);
  if (refusals.length === 0) return;
  let locate = (_: readonly (string | number)[]) => ({ line: 1, column: 1 });
  try {
    const { parseTopologyText } = await import("../load/parse.js");
    locate = parseTopologyText(readFileSync(file, "utf8"), file).locate;
  } catch {
    // standard input, or a file gone since: the message still names the field
  }
  throw new ValidationError(
    refusals.map((r) => ({
      severity: "error" as const,
      file,
      ...locate(r.path),
      path: formatPath(r.path),
      message: `${r.message} (nothing was changed)`,
    })),
  );
}

async function labNameOf(arg: string): Promise<string> {
  return /\.(ya?ml|json)$/.test(arg) ? (await readTopology(arg)).lab.name : arg;
}

export async function down(
  arg: string,
  o: { stateDir: string; json?: boolean },
): Promise<number | null> {
  const name = await labNameOf(arg);
  if (!isName(name)) return null;
  const dir = labStateDir(o.stateDir, name);
  if (!isRootlessLab(dir)) return null;
  const progress = stderr(!!o.json);
  const lock = await lockRootlessLab(o.stateDir, name);
  try {
    const st = rootlessState(dir);
    const undone: string[] = [];
    const errors: string[] = [];
    if (st?.holderPid) {
      const run = await runQnetInside(
        st.holderPid,
        ["rootless-internal", "down", name, "--state-dir", o.stateDir],
        insideInfoOf(o.stateDir, st.rec.helper),
        { capture: true },
      );
      const r = parseJson<{ undone: string[]; errors: string[] }>(run, "down");
      undone.push(...r.undone);
      errors.push(...r.errors);
    } else {
      progress(`lab ${name}: its namespace holder is gone, and everything inside went with it`);
    }
    if (errors.length === 0) {
      const t = await teardownRootless(dir);
      undone.push(...t.undone);
      errors.push(...t.errors);
    }
    if (o.json) printJson({ lab: name, undone, errors });
    else {
      process.stdout.write(`lab ${name}: removed ${undone.length} object(s)\n`);
      for (const e of errors) process.stderr.write(`qnet: ${e}\n`);
    }
    return errors.length ? EXIT.failure : EXIT.ok;
  } finally {
    lock.release();
  }
}

function parseJson<T>(run: InsideRun, what: string): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new UserError(
      `the qnet inside the lab's namespaces failed (${what}, exit ${run.code}); see its messages above`,
    );
  }
}

export async function status(name: string, o: { stateDir: string; json?: boolean }) {
  if (!isName(name)) return null;
  const dir = labStateDir(o.stateDir, name);
  const st = rootlessState(dir);
  if (!st) return null;
  const { hostObjects, renderRootlessStatus } = await import("../rootless/inner.js");
  if (st.holderPid === null) {
    const state = await cleanUpGone(o.stateDir, name);
    const s = {
      lab: name,
      stateDir: dir,
      netns: null,
      ok: false,
      objects: hostObjects(st),
      cleanedUp: state === "holder-gone",
    };
    if (o.json) printJson(s);
    else
      process.stdout.write(
        `lab ${name}: gone: its namespace holder died, and everything inside went with it${s.cleanedUp ? "; its state is cleaned up" : ` (${state})`}\n`,
      );
    return EXIT.failure;
  }
  const run = await runQnetInside(
    st.holderPid,
    ["rootless-internal", "status", name, "--state-dir", o.stateDir],
    insideInfoOf(o.stateDir, st.rec.helper),
    { capture: true },
  );
  const inner = parseJson<{ objects: { state: string }[]; ok: boolean }>(run, "status");
  const outer = hostObjects(st);
  const s = {
    ...inner,
    objects: [...outer, ...inner.objects],
    ok: inner.ok && outer.every((x) => x.state === "present"),
  };
  if (o.json) printJson(s);
  else process.stdout.write(renderRootlessStatus(s as never));
  return s.ok ? EXIT.ok : EXIT.failure;
}

export async function plan(file: string, o: { stateDir: string; netns?: string }) {
  const compiled = await readTopology(file);
  const dir = labStateDir(o.stateDir, compiled.lab.name);
  const st = rootlessState(dir);
  if (st?.holderPid)
    return (await runQnetInside(st.holderPid, givenArgs(), insideInfoOf(o.stateDir, st.rec.helper)))
      .code;
  if (isRoot()) return null;
  const { lab } = rootlessLab(compiled.lab);
  const via = helperReason(lab) ? HELPER_IFNAME : null;
  process.stderr.write(
    `qnet: rootless: planned against a fresh namespace of its own; \`up\` also starts the lab's namespace holder${via ? " and its helper (pasta or slirp4netns)" : ""}\n`,
  );
  const prefix = [
    ...["unshare", "--user", "--map-root-user", "--net", "--pid", "--mount", "--fork"],
    ...["--mount-proc", "--"],
  ];
  return (
    await runQnetInside(0, givenArgs(), { stateRoot: o.stateDir, publishedVia: via }, { prefix })
  ).code;
}
