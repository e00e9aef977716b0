// Network namespaces for labs: made when missing (with `lo` up), deleted on down only if qnet made them.
import { existsSync } from "node:fs";
import { EXIT, UserError } from "../errors.js";
import { isNetnsName, NETNS_RULE } from "../model/names.js";
import { handOver } from "./handover.js";
import type { Runner } from "./runner.js";

export function checkNetnsName(name: string): void {
  if (!isNetnsName(name)) {
    throw new UserError(
      `invalid network namespace name ${JSON.stringify(name)}`,
      NETNS_RULE,
      EXIT.usage,
    );
  }
}

/** A namespace made by `ip netns add` (or bind-mounted there by anyone else). */
export function netnsExists(name: string): boolean {
  checkNetnsName(name);
  return existsSync(`/run/netns/${name}`);
}

/** Make the namespace and bring its `lo` up (the engine has journaled its undo before). */
export async function createNetns(name: string, runner: Runner): Promise<void> {
  if (netnsExists(name)) return;
  await runner.run(["ip", "netns", "add", name], { hostNamespace: true });
  await runner.run(["ip", "-n", name, "link", "set", "dev", "lo", "up"], { hostNamespace: true });
}

/** Undo of a namespace qnet created: delete it, unless another lab still runs there (it inherits it). */
export async function undoNetns(name: string, stateDir: string, runner: Runner): Promise<void> {
  if (!netnsExists(name)) return;
  if (handOver({ kind: "netns", name }, name, stateDir)) return;
  await runner.run(["ip", "netns", "del", name], { hostNamespace: true });
}
