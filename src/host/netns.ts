// Network namespaces for labs: made when missing (journaled only if qnet made it), with `lo` up.
import { existsSync } from "node:fs";
import { EXIT, UserError } from "../errors.js";
import { NETNS_RE } from "../model/schema.js";
import type { Journal } from "./journal.js";
import { ProcessRunner, type Runner } from "./runner.js";

export function checkNetnsName(name: string): void {
  if (!NETNS_RE.test(name)) {
    throw new UserError(
      `invalid network namespace name ${JSON.stringify(name)}`,
      "a namespace name is 1-64 characters of [A-Za-z0-9_.-], starting with a letter or digit",
      EXIT.usage,
    );
  }
}

/** A namespace made by `ip netns add` (or bind-mounted there by anyone else). */
export function netnsExists(name: string): boolean {
  checkNetnsName(name);
  return existsSync(`/run/netns/${name}`);
}

/**
 * Make sure the namespace exists. When qnet creates it, the journal gets `{kind:"netns"}` first (so
 * `down` deletes it) and its `lo` is brought up; a namespace that existed is used as is, never deleted.
 */
export async function ensureNetns(opts: {
  name: string;
  journal: Journal;
  runner?: Runner;
  progress?: (msg: string) => void;
}): Promise<{ created: boolean }> {
  const { name, journal } = opts;
  if (netnsExists(name)) return { created: false };
  const runner = opts.runner ?? new ProcessRunner(null);
  journal.record({ what: `create network namespace ${name}`, undo: { kind: "netns", name } });
  await runner.run(["ip", "netns", "add", name], { hostNamespace: true });
  await runner.run(["ip", "-n", name, "link", "set", "dev", "lo", "up"], { hostNamespace: true });
  opts.progress?.(`created network namespace ${name}`);
  return { created: true };
}
