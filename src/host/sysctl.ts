// Sysctls in the lab's namespace: set (journaled with the old value by the engine) and restored; a
// namespace-wide one goes to another lab still in the namespace rather than back.
import { CommandError } from "../errors.js";
import type { Action } from "../kinds/types.js";
import type { Undo } from "../model/undo.js";
import { handOver } from "./handover.js";
import { netnsExists } from "./netns.js";
import type { Runner } from "./runner.js";

/** A sysctl of the whole namespace, as opposed to one interface's (net.ipv4.conf.<if>.*). */
const namespaceWide = (key: string) => !/^net[./]ipv[46][./]conf[./]/.test(key);

/** procps reads a slash-separated key as a path (interface names may hold dots). */
const writeArgv = (key: string, value: string) => ["sysctl", "-q", "-w", `${key}=${value}`];

export async function applySysctls(actions: Action[], runner: Runner): Promise<void> {
  for (const a of actions) {
    const w = a.payload as { key: string; value: string };
    await runner.run(writeArgv(w.key, w.value));
  }
}

export async function undoSysctl(
  u: Extract<Undo, { kind: "sysctl" }>,
  env: { runner: Runner; stateDir: string },
): Promise<void> {
  if (!/^[A-Za-z0-9_.\-/]+$/.test(u.key) || /[\n\0]/.test(u.value)) {
    throw new Error(`refusing odd sysctl undo ${JSON.stringify(u)}`);
  }
  if (env.runner.netns && !netnsExists(env.runner.netns)) return;
  if (namespaceWide(u.key) && handOver(u, env.runner.netns, env.stateDir)) return;
  const r = await env.runner.run(writeArgv(u.key, u.value), { allowFail: true });
  // An interface's setting is gone with the interface (a bridge deleted by hand): nothing to restore.
  if (r.exitCode !== 0 && !(!namespaceWide(u.key) && /cannot stat|No such file/i.test(r.stderr))) {
    throw new CommandError(writeArgv(u.key, u.value), r.exitCode, r.stderr);
  }
}
