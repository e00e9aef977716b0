// `dns: host`: the lab's block in the hosts file the host (or the lab's namespace) resolves with, and its undo.
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import type { HostsPayload } from "../kinds/hosts.js";
import type { Action } from "../kinds/types.js";
import type { Undo } from "../model/undo.js";
import { removeHostsBlock, withHostsBlock } from "../render/hosts-block.js";
import { writeFileAtomic } from "./files.js";

/** Write the lab's block into the hosts file its namespace resolves with (re-read now: never stale). */
export async function applyHostsBlock(actions: Action[], lab: string): Promise<void> {
  for (const a of actions) {
    const p = a.payload as HostsPayload;
    const exists = existsSync(p.path);
    const current = readFileSync(exists ? p.path : p.base, "utf8");
    const next = withHostsBlock(current, lab, p.block);
    if (exists && next === current) continue;
    mkdirSync(dirname(p.path), { recursive: true });
    writeHosts(p.path, next, exists);
  }
}

/**
 * A file qnet made is replaced atomically; an existing one (/etc/hosts) is rewritten in place, since it
 * may be a bind mount (containers) or a symlink whose target, owner and label must stay.
 */
function writeHosts(path: string, text: string, existing: boolean): void {
  if (!existing) {
    writeFileAtomic(path, text, 0o644);
    return;
  }
  const fd = openSync(path, "r+");
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, text, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function undoHostsBlock(u: Extract<Undo, { kind: "hosts-block" }>): Promise<void> {
  if (!existsSync(u.path)) return;
  const text = readFileSync(u.path, "utf8");
  const next = removeHostsBlock(text, u.lab);
  // A namespace's hosts file that qnet made (as a copy of /etc/hosts) goes once no lab's block is left
  // in it: labs may share a namespace, and the last one out removes it, whoever created it.
  const inNetnsDir = basename(dirname(dirname(u.path))) === "netns";
  const madeByQnet =
    u.created ||
    (inNetnsDir && next === readFileSync(join(dirname(dirname(dirname(u.path))), "hosts"), "utf8"));
  if (madeByQnet && !next.includes("# BEGIN qnet:")) {
    rmSync(u.path, { force: true });
    if (inNetnsDir && readdirSync(dirname(u.path)).length === 0) rmdirSync(dirname(u.path));
    return;
  }
  if (next !== text) writeHosts(u.path, next, true);
}
