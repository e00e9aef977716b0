// `dns: host`: keeps the lab's block in the hosts file the host (or the lab's namespace) resolves with.
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
import { removeHostsBlock, renderHostsBlock, withHostsBlock } from "../render/hosts-block.js";
import type { LabContext } from "./context.js";
import { writeFileAtomic } from "./files.js";
import type { PhaseResult } from "./nat.js";
import { registerUndoHandler } from "./undo.js";

interface HostsUndo {
  path: string;
  lab: string;
  /** qnet created the file (a namespace's /etc/netns/NS/hosts): delete it rather than edit it. */
  created: boolean;
}

/**
 * The hosts file lookups see: /etc/hosts, or /etc/netns/<ns>/hosts for a lab in a namespace
 * (`ip netns exec` bind-mounts it over /etc/hosts, so it starts as a copy of /etc/hosts).
 */
export function hostsPath(netns: string | null, etc = "/etc"): string {
  return netns ? join(etc, "netns", netns, "hosts") : join(etc, "hosts");
}

export async function applyHostsFile(ctx: LabContext, etc = "/etc"): Promise<PhaseResult> {
  const block = renderHostsBlock(ctx.lab);
  if (!block) return { changed: false, notes: [] };
  const path = hostsPath(ctx.runner.netns, etc);
  const exists = existsSync(path);
  const current = exists ? readFileSync(path, "utf8") : readFileSync(join(etc, "hosts"), "utf8");
  const next = withHostsBlock(current, ctx.lab.name, block);
  if (exists && next === current) return { changed: false, notes: [] };
  const alreadyJournaled = exists && current.includes(`# BEGIN qnet:${ctx.lab.name} `);
  if (!alreadyJournaled) {
    const undo: HostsUndo = {
      path,
      lab: ctx.lab.name,
      created: !exists,
    };
    ctx.journal.record({
      what: `add the lab's names to ${path}`,
      undo: { kind: "custom", handler: "hosts-block", data: undo },
    });
  }
  mkdirSync(dirname(path), { recursive: true });
  writeHosts(path, next, exists);
  return { changed: true, notes: [`host resolves the lab's VMs by name (${path})`] };
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

async function undoHostsBlock(data: unknown): Promise<void> {
  const u = data as HostsUndo;
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

registerUndoHandler("hosts-block", undoHostsBlock);
