// `dns: host`: keeps the lab's block in the hosts file the host (or the lab's namespace) resolves with.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
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
  /** qnet created its directory too (/etc/netns/NS): removed when empty. */
  createdDir?: boolean;
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
      createdDir: !existsSync(dirname(path)),
    };
    ctx.journal.record({
      what: `add the lab's names to ${path}`,
      undo: { kind: "custom", handler: "hosts-block", data: undo },
    });
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, next, 0o644);
  return { changed: true, notes: [`host resolves the lab's VMs by name (${path})`] };
}

async function undoHostsBlock(data: unknown): Promise<void> {
  const u = data as HostsUndo;
  if (!existsSync(u.path)) return;
  if (u.created) {
    rmSync(u.path, { force: true });
    if (u.createdDir && readdirSync(dirname(u.path)).length === 0) rmdirSync(dirname(u.path));
    return;
  }
  const text = readFileSync(u.path, "utf8");
  const next = removeHostsBlock(text, u.lab);
  if (next !== text) writeFileAtomic(u.path, next, 0o644);
}

registerUndoHandler("hosts-block", undoHostsBlock);
